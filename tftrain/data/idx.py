"""IDX files as MNIST ships them (`train-images-idx3-ubyte.gz`, ...), gzipped or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tftrain.data.archives import read_gzip
from tftrain.data.augment import AugmentConfig
from tftrain.data.base import ArrayDataset, SplitConfig, resolve_file
from tftrain.errors import ConfigError, DataError
from tftrain.registry import datasets
from tftrain.schema import limits

IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (magic 0x0000TTDD, big-endian dims, then the data)."""
    if path.suffix == ".gz":
        raw = read_gzip(path)
    else:
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise DataError(f"cannot read IDX file {path}: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = np.dtype(IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: header needs {header} bytes, file has {len(raw)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path} is truncated or corrupt: header says shape {shape} "
            f"({expected} bytes), file has {len(raw)} bytes"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).exists():
            return folder / name
    raise ConfigError(
        f"config error: data file not found: {folder / (stem + '.gz')} (nor {stem}) "
        f"in the folder set by 'data.path'"
    )


@dataclass(frozen=True)
class IdxConfig(SplitConfig):
    path: str = ""
    flatten: bool = True
    valid_count: int | None = field(default=5000, metadata=limits(ge=1))
    holdout: Literal["random", "last"] = (
        "last"  # the tutorials validate on the last 5,000 training images
    )
    test_fraction: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # needs flatten: false


@datasets.register("idx")
class IdxImages(ArrayDataset):
    """MNIST-style IDX image/label files in one folder; the last 5,000 train images validate."""

    Config = IdxConfig
    description = "IDX image files as MNIST ships them (gzipped or not)"
    tasks = frozenset({"classification"})

    def load(self) -> dict:
        folder = resolve_file(self.config.path, "data.path")
        if not folder.is_dir():
            raise ConfigError(f"config error: 'data.path' must be a folder of IDX files: {folder}")
        splits = {}
        for split, (images_stem, labels_stem) in FILES.items():
            images_path = find_idx(folder, images_stem)
            labels_path = find_idx(folder, labels_stem)
            images, labels = read_idx(images_path), read_idx(labels_path)
            if len(images) != len(labels):
                raise DataError(
                    f"{images_path} has {len(images)} images but {labels_path} has "
                    f"{len(labels)} labels"
                )
            if self.config.flatten:
                images = images.reshape(len(images), -1)
            elif images.ndim == 3:
                images = images[..., None]  # add the channel axis: (n, 28, 28, 1)
            splits[split] = (images, labels.astype(np.int32))
        return splits

    def transform(self, train_x):
        if self.config.standardize:
            return super().transform(train_x)
        return {"shift": [0.0], "scale": [1.0 / 255.0]}

    def class_names(self, labels):
        return [str(i) for i in range(int(labels.max()) + 1)]
