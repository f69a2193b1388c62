"""Reading raw feature files for `predict`: CSV (with or without header), NPZ and NPY."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from tftrain.data.base import DataSpec
from tftrain.errors import ConfigError, DataError


def read_features(path, spec: DataSpec) -> np.ndarray:
    """Raw features shaped (n, *spec.input_shape) from a CSV, NPZ or NPY file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"usage error: input file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x = _from_npz(path)
    elif suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read NPY file {path}: {error}") from None
    elif suffix in (".csv", ".txt", ".tsv"):
        x = _from_csv(path, spec, "\t" if suffix == ".tsv" else ",")
    else:
        raise ConfigError(f"usage error: {path}: unsupported input format; use .csv, .npz or .npy")
    expected = int(np.prod(spec.input_shape))
    if x.ndim == 1 and x.size == expected:
        x = x[None]
    if x.size == 0 or x.size // len(x) != expected:
        raise DataError(
            f"{path}: each example needs {expected} values (shape {list(spec.input_shape)}), "
            f"got array of shape {list(x.shape)}"
        )
    return x.reshape(len(x), *spec.input_shape).astype(np.float32)


def _from_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in ("x", "features", "images"):
                if key in archive.files:
                    return archive[key]
            if len(archive.files) == 1:
                return archive[archive.files[0]]
            raise DataError(f"{path}: no 'x' array; it holds {archive.files}")
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read NPZ file {path}: {error}") from None


def _from_csv(path: Path, spec: DataSpec, delimiter: str) -> np.ndarray:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle, delimiter=delimiter) if row]
    if not rows:
        raise DataError(f"{path} is empty")
    columns = None
    if not all(_is_number(v) for v in rows[0]):
        header, rows = rows[0], rows[1:]
        names = spec.feature_names or []
        if names and all(name in header for name in names):
            columns = [header.index(name) for name in names]
    values = []
    for line, row in enumerate(rows, start=2 if columns is not None else 1):
        picked = [row[i] for i in columns] if columns is not None else row
        try:
            values.append([float(v) for v in picked])
        except ValueError:
            raise DataError(f"{path}, line {line}: non-numeric value in {picked}") from None
    return np.asarray(values, dtype=np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
