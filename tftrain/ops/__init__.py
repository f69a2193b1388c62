"""Custom TensorFlow ops, compiled from their C++ source on first use and cached.

A fresh machine has gcc and TensorFlow's headers (they ship in the wheel), so an op is built
where it runs (with -march=native) instead of at install time, the way
torch.utils.cpp_extension.load does it. The shared library is cached under
$TFTRAIN_OPS_CACHE (default ~/.cache/tftrain/ops) by a digest of the source, the compiler
flags, the TensorFlow version and the CPU, so a changed source or machine rebuilds.

Loading a library runs its code, so a cached one is trusted only if the cache directory and
the file belong to this user and nobody else can write them, and the file matches the SHA-256
digest written beside it when it was built; a file that fails is deleted and rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = {"word2vec": "word2vec_kernels.cc"}
# -fassociative-math lets dot products vectorise; no -ffast-math so infinities stay honest.
OPTIMIZE = [
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
]
QUIET = ["-w"]


class OpBuildError(RuntimeError):
    """The op's C++ source could not be compiled or loaded here."""


def cache_dir() -> Path:
    return Path(os.environ.get("TFTRAIN_OPS_CACHE") or Path.home() / ".cache" / "tftrain" / "ops")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def compile_command(source: Path, target: Path) -> list[str]:
    import tensorflow as tf

    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise OpBuildError(f"no C++ compiler '{compiler}' on PATH (set CXX)")
    return [
        compiler,
        "-shared",
        "-fPIC",
        *OPTIMIZE,
        *QUIET,
        *tf.sysconfig.get_compile_flags(),
        str(source),
        "-o",
        str(target),
        *tf.sysconfig.get_link_flags(),
    ]


def library_path(name: str) -> Path:
    """Where op `name`'s shared library is (or will be) cached."""
    import tensorflow as tf

    source = SOURCE_DIR / SOURCES[name]
    digest = hashlib.sha256()
    for part in (source.read_bytes(), " ".join(OPTIMIZE).encode(), tf.__version__.encode()):
        digest.update(part)
    digest.update(f"{platform.machine()} {cpu_model()}".encode())
    return cache_dir() / f"{name}-{digest.hexdigest()[:16]}.so"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def not_private(path: Path) -> str | None:
    """Why another user could have written `path` (None if only this user can)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if info.st_uid != os.getuid():
        return f"belongs to user id {info.st_uid}, not to you ({os.getuid()})"
    if info.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def check_directory(directory: Path) -> None:
    """Refuse a cache directory another user could plant a library in."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    problem = not_private(directory.resolve())
    if problem:
        raise OpBuildError(
            f"refusing the op cache {directory}: it {problem}; use a private directory "
            "(chmod go-w, or set TFTRAIN_OPS_CACHE)"
        )


def trusted(target: Path) -> bool:
    """Whether a cached library may be loaded; an untrusted one is deleted, with the reason."""
    digest = target.with_name(target.name + ".sha256")
    problem = not_private(target) or (digest.exists() and not_private(digest))
    if not problem and (not digest.exists() or digest.read_text().strip() != sha256(target)):
        problem = "does not match the digest written when it was built"
    if problem:
        print(f"the cached op {target} {problem}; rebuilding it", file=sys.stderr, flush=True)
        target.unlink()
    return problem is None


def build(name: str) -> Path:
    """Compile op `name` unless a trusted library is cached; returns the library's path."""
    target = library_path(name)
    check_directory(target.parent)
    if target.exists() and trusted(target):
        return target
    # A first run pauses here for about half a minute; say why, once.
    print(
        f"compiling the {name} op (once per machine, about 30 s) ...", file=sys.stderr, flush=True
    )
    # Compile beside the target and rename: concurrent builders (parallel test workers)
    # never load a half-written library.
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        command = compile_command(SOURCE_DIR / SOURCES[name], Path(temporary))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()
            raise OpBuildError(
                f"compiling the {name} op failed ({' '.join(command[:2])} ...):\n"
                + "\n".join(output[-15:])
            )
        os.chmod(temporary, 0o644)
        digest = target.with_name(target.name + ".sha256")
        digest_temporary = f"{temporary}.sha256"
        Path(digest_temporary).write_text(sha256(Path(temporary)) + "\n")
        os.chmod(digest_temporary, 0o644)
        os.replace(digest_temporary, digest)  # the digest first: never a library without one
        os.replace(temporary, target)
    finally:
        for leftover in (temporary, f"{temporary}.sha256"):
            if os.path.exists(leftover):
                os.unlink(leftover)  # a failed build leaves nothing behind
    return target


@functools.cache
def load(name: str):
    """The module of op `name` (tf.load_op_library), built first if needed."""
    import tensorflow as tf

    path = build(name)
    try:
        return tf.load_op_library(str(path))
    except (tf.errors.NotFoundError, OSError) as error:
        raise OpBuildError(f"loading the {name} op from {path} failed: {error}") from error
