"""Reading raw feature files for `predict`: CSV (with or without header), NPZ and NPY."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tftrain.data.archives import check_npy, check_npz
from tftrain.data.base import DataSpec
from tftrain.data.tabular import check_finite, csv_rows, is_number
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
        check_npy(path)
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
    check_npz(path)
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
    rows = csv_rows(path, delimiter)
    if not rows:
        raise DataError(f"{path} is empty")
    header = [f"column{i}" for i in range(len(rows[0][1]))]
    columns = list(range(len(header)))
    if not all(is_number(v) for v in rows[0][1]):
        header, rows = rows[0][1], rows[1:]
        columns = list(range(len(header)))
        names = spec.feature_names or []
        if names and all(name in header for name in names):
            columns = [header.index(name) for name in names]
    values = []
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
        picked = [row[i] for i in columns]
        try:
            values.append([float(v) for v in picked])
        except ValueError:
            raise DataError(f"{path}, line {line}: non-numeric value in {picked}") from None
    with np.errstate(over="ignore"):  # too large for float32: check_finite names it
        x = np.asarray(values, dtype=np.float32)
    check_finite(x, path, rows, [header[i] for i in columns], columns)
    return x
