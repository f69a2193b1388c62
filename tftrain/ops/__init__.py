"""Custom TensorFlow ops, compiled from their C++ source on first use and cached.

A fresh machine has gcc and TensorFlow's headers (they ship in the wheel), so an op is built
where it runs (with -march=native) instead of at install time, the way
torch.utils.cpp_extension.load does it. The shared library is cached under
$TFTRAIN_OPS_CACHE (default ~/.cache/tftrain/ops) by a digest of the source, the compiler
flags, the TensorFlow version and the CPU, so a changed source or machine rebuilds.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
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


def build(name: str) -> Path:
    """Compile op `name` unless its library is cached; returns the library's path."""
    target = library_path(name)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
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
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)  # a failed build leaves nothing behind
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
