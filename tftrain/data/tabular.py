"""Tabular files: CSV (header, a chosen label column, numeric features) and NPZ (x/y arrays)."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tftrain.data.archives import check_npz
from tftrain.data.augment import AugmentConfig
from tftrain.data.base import ArrayDataset, SplitConfig, require_path, resolve_file
from tftrain.errors import DataError, decode_utf8
from tftrain.registry import datasets


@dataclass(frozen=True)
class CsvConfig(SplitConfig):
    path: str = ""
    valid_path: str | None = None
    test_path: str | None = None
    label_column: str | int = -1
    header: bool = True
    delimiter: str = ","
    task: Literal["classification", "regression"] = "classification"
    standardize: bool = True

    def __post_init__(self):
        require_path(self.path, "path")


def csv_rows(path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank row; errors name the line (and the byte)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read CSV file {path}: {error}") from None
    text = decode_utf8(raw, path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, line = [], 1
    try:
        for row in reader:
            if row:
                rows.append((line, row))
            line = reader.line_num + 1  # a quoted field may span lines
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV: {error}") from None
    return rows


def check_finite(x: np.ndarray, path: Path, rows: list, names: list[str], columns) -> None:
    """Name the file, line and column of the first nan or inf (not the learning rate later).

    `rows` are csv_rows' (line, fields) behind x's rows; `columns` the field behind each
    column of x, `names` its name."""
    bad = ~np.isfinite(x.reshape(len(x), -1)) if x.size else np.zeros((0, 0), bool)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        line, fields = rows[row]
        raise DataError(
            f"{path}, line {line}, column {columns[column] + 1} ({names[column]!r}): "
            f"{fields[columns[column]].strip()!r} is not a finite float32 number; "
            "remove or fill such values"
        )


def read_csv(path: Path, config: CsvConfig, class_ids: dict | None):
    """(features, raw labels, feature names) from one CSV file, errors naming file and line."""
    rows = csv_rows(path, config.delimiter)
    if config.header:
        if not rows:
            raise DataError(f"{path} is empty (expected a header line)")
        names, rows = rows[0][1], rows[1:]
    else:
        names = [f"column{i}" for i in range(len(rows[0][1]))] if rows else []
    if not rows:
        raise DataError(f"{path} has no data rows")
    label_index = column_index(config.label_column, names, path)
    features, labels = [], []
    for line, row in rows:
        if len(row) != len(names):
            raise DataError(f"{path}, line {line}: {len(row)} fields, expected {len(names)}")
        label = row[label_index].strip()
        values = row[:label_index] + row[label_index + 1 :]
        try:
            features.append([float(v) for v in values])
        except ValueError:
            bad = next(v for v in values if not is_number(v))
            raise DataError(f"{path}, line {line}: non-numeric feature value {bad!r}") from None
        labels.append(label)
    feature_names = names[:label_index] + names[label_index + 1 :]
    with np.errstate(over="ignore"):  # too large for float32: check_finite names it
        x = np.asarray(features, dtype=np.float32)
    columns = [i for i in range(len(names)) if i != label_index]
    check_finite(x, path, rows, feature_names, columns)
    if config.task == "regression":
        try:
            with np.errstate(over="ignore"):
                y = np.asarray([float(v) for v in labels], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}: the label column holds non-numeric values") from None
        check_finite(y, path, rows, [names[label_index]], [label_index])
    else:
        y = np.asarray([class_ids.setdefault(v, len(class_ids)) for v in labels], dtype=np.int32)
    return x, y, feature_names


def column_index(label_column, names: list, path: Path) -> int:
    if isinstance(label_column, int):
        if not -len(names) <= label_column < len(names):
            raise DataError(f"{path}: label column {label_column} is out of range")
        return label_column % len(names)
    if label_column not in names:
        raise DataError(f"{path}: no column named {label_column!r}; columns are {names}")
    return names.index(label_column)


def is_number(text: str) -> bool:
    """Whether a cell reads as a number (as `float` reads it: "1e3", " 2 ", "nan", "inf")."""
    try:
        float(text)
        return True
    except ValueError:
        return False


@datasets.register("csv")
class CsvDataset(ArrayDataset):
    """A CSV file (or one per split) of numeric features and a label column."""

    Config = CsvConfig
    description = "CSV with a header and a label column (classification or regression)"

    @property
    def task(self):
        return self.config.task

    def load(self) -> dict:
        self._class_ids: dict = {}
        paths = {"train": self.config.path, "valid": self.config.valid_path}
        paths["test"] = self.config.test_path
        splits = {}
        for split, text in paths.items():
            if text:
                path = resolve_file(text, f"data.{'path' if split == 'train' else split + '_path'}")
                x, y, self._feature_names = read_csv(path, self.config, self._class_ids)
                splits[split] = (x, y)
        if self.task == "classification":
            labels = list(self._class_ids)
            # Labels that are all integers keep their own numbering (0..k-1).
            if all(is_integer(v) for v in labels):
                remap = {self._class_ids[v]: int(v) for v in labels}
                for split, (x, y) in splits.items():
                    splits[split] = (x, np.asarray([remap[i] for i in y], dtype=np.int32))
                self._class_names = [str(i) for i in range(max(int(v) for v in labels) + 1)]
            else:
                self._class_names = labels
        return splits

    def class_names(self, labels):
        return self._class_names

    def feature_names(self):
        return self._feature_names


def is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit() and int(text) >= 0


@dataclass(frozen=True)
class NpzConfig(SplitConfig):
    path: str = ""
    valid_path: str | None = None
    test_path: str | None = None
    x_key: str = "x"
    y_key: str = "y"
    task: Literal["classification", "regression"] = "classification"
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # for (n, H, W, C) images

    def __post_init__(self):
        require_path(self.path, "path")


def read_npz(path: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(f"{path} has no array {missing[0]!r}; it holds {archive.files}")
            return [archive[k] for k in keys]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"cannot read NPZ file {path}: {error}") from None


@datasets.register("npz")
class NpzDataset(ArrayDataset):
    """NumPy .npz archives holding a feature array and a label array (one file or one per split)."""

    Config = NpzConfig
    description = "NumPy .npz archives with x and y arrays"

    @property
    def task(self):
        return self.config.task

    def load(self) -> dict:
        keys = (self.config.x_key, self.config.y_key)
        splits = {}
        for split, text in (
            ("train", self.config.path),
            ("valid", self.config.valid_path),
            ("test", self.config.test_path),
        ):
            if text:
                path = resolve_file(text, f"data.{'path' if split == 'train' else split + '_path'}")
                x, y = read_npz(path, keys)
                if len(x) != len(y):
                    raise DataError(f"{path}: {len(x)} feature rows but {len(y)} labels")
                if self.task == "classification" and not np.issubdtype(y.dtype, np.integer):
                    raise DataError(
                        f"{path}: classification labels must be integers, got {y.dtype}"
                    )
                splits[split] = (x, y)
        return splits
