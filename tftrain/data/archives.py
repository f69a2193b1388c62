"""Reading zip members, gzip files and .npz archives without trusting what they claim.

A member may unpack to at most 200 times its packed size once it is over 64 MB, and never to
more than 4 GB (`TFTRAIN_MAX_UNPACKED_MB` replaces both rules): an archive "bomb" of zeros is
refused, naming the member, before it fills memory. Encrypted members and compression methods
Python cannot read are named too.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tftrain.errors import DataError

MAX_RATIO = 200  # real data packs 2-20x; a bomb of zeros ~1000x
ANY_RATIO_BELOW = 64 * 2**20
MAX_BYTES = 4 * 2**30
CHUNK = 2**20


def unpacked_limit(packed: int) -> int:
    """How many bytes a member of `packed` bytes may unpack to."""
    chosen = os.environ.get("TFTRAIN_MAX_UNPACKED_MB")
    if chosen:
        return int(float(chosen) * 2**20)
    return min(MAX_BYTES, max(ANY_RATIO_BELOW, MAX_RATIO * packed))


def too_large(name: str, packed: int, limit: int, size: int | None = None) -> DataError:
    """`size` is the declared size; None when reading stopped at the limit."""
    amount = f"{size:,}" if size is not None else f"more than {limit:,}"
    return DataError(
        f"{name} unpacks to {amount} bytes from {packed:,}, beyond the limit of {limit:,} "
        "(a damaged file or an archive bomb?); if it is genuine, set TFTRAIN_MAX_UNPACKED_MB"
    )


def read_limited(handle, name: str, packed: int) -> bytes:
    """Everything `handle` yields, stopping with an error once past the unpacked limit."""
    limit = unpacked_limit(packed)
    chunks, total = [], 0
    while chunk := handle.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise too_large(name, packed, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def check_member(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse an encrypted member, or one whose declared size is beyond the limit."""
    name = f"{path}:{info.filename}"
    if info.flag_bits & 0x1:
        raise DataError(f"{name} is encrypted; unpack it with its password first")
    limit = unpacked_limit(info.compress_size)
    if info.file_size > limit:
        raise too_large(name, info.compress_size, limit, info.file_size)


def read_member(archive: zipfile.ZipFile, path: Path, member: str) -> bytes:
    """One member's bytes, checked and read in chunks (its declared size may be a lie)."""
    info = archive.getinfo(member)
    check_member(path, info)
    name = f"{path}:{member}"
    try:
        with archive.open(info) as handle:
            return read_limited(handle, name, info.compress_size)
    except NotImplementedError:
        raise DataError(
            f"{name} uses compression method {info.compress_type}, which Python cannot read; "
            "repack it with deflate"
        ) from None
    except (RuntimeError, zlib.error, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot unpack {name}: {error}") from None


def read_gzip(path: Path) -> bytes:
    """A gzip file's unpacked bytes (its trailer's size is not trusted: reading stops at the
    limit)."""
    try:
        with gzip.open(path, "rb") as handle:
            return read_limited(handle, str(path), path.stat().st_size)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read gzip file {path}: {error}") from None


def check_npz(path: Path) -> None:
    """Check every array of an .npz before numpy reads one: member sizes, encryption, and that
    each array's header asks for no more bytes than its member holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                check_member(path, info)
                if info.filename.endswith(".npy"):
                    with archive.open(info) as handle:
                        check_npy_header(handle, f"{path}:{info.filename}", info.file_size)
    except NotImplementedError:
        raise DataError(f"{path} uses a compression method Python cannot read") from None
    except (zipfile.BadZipFile, RuntimeError, zlib.error, EOFError) as error:
        raise DataError(f"cannot read NPZ file {path}: {error}") from None


def check_npy(path: Path) -> None:
    """Check a plain .npy file's header against the file's size."""
    try:
        with open(path, "rb") as handle:
            check_npy_header(handle, str(path), path.stat().st_size)
    except OSError as error:
        raise DataError(f"cannot read NPY file {path}: {error}") from None


def check_npy_header(handle, name: str, size: int) -> None:
    """numpy allocates what an array header asks for before reading the data: check it first."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            return  # numpy checks other versions itself
    except ValueError as error:
        raise DataError(f"{name} is not a valid .npy array: {error}") from None
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed > size:
        raise DataError(
            f"{name}: its header declares shape {list(shape)} ({needed:,} bytes) but the member "
            f"holds {size:,} bytes"
        )
