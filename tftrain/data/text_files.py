"""Labelled texts from a user's files: CSV/TSV, JSON lines, or a folder per class of .txt files.

Each reader returns `(texts, labels)`, two lists of strings. CSV columns and the header are
detected when not given: the label column is the one with few distinct values, the text
column the one with the longest strings, and the first row is a header when it does not look
like the rows below it. Errors name the file and line (UTF-8 errors included).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from tftrain.data.tabular import is_number
from tftrain.errors import ConfigError, DataError, decode_utf8

DELIMITERS = ",\t;|"
SAMPLE_LINES = 200


def decode(path: Path) -> str:
    """A whole file as text; invalid UTF-8 is a DataError naming the file and line."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from None
    return decode_utf8(data, path)


def detect_format(path: Path) -> str:
    """folders | jsonl | csv, from what the path is and how it is named."""
    if path.is_dir():
        return "folders"
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    return "csv"


# --- CSV / TSV ------------------------------------------------------------------------------


def sniff_delimiter(text: str, path: Path) -> str:
    """The delimiter found the same number of times on most sample lines (tab wins ties)."""
    lines = [line for line in text.splitlines()[:SAMPLE_LINES] if line.strip()]
    if not lines:
        raise DataError(f"{path} is empty")
    if path.suffix.lower() == ".tsv":
        return "\t"
    best, best_share = None, 0.0
    for delimiter in DELIMITERS:
        counts = [line.count(delimiter) for line in lines]
        if not any(counts):
            continue
        # Tab-separated text rarely has stray tabs; commas inside texts are common, so a
        # delimiter counts only when it splits most lines the same way.
        typical = max(set(counts), key=counts.count)
        share = counts.count(typical) / len(counts) if typical else 0.0
        if delimiter == "\t" and all(counts):
            return "\t"
        if share > best_share:
            best, best_share = delimiter, share
    if best is None:
        raise DataError(
            f"{path}: found no delimiter ({', '.join(map(repr, DELIMITERS))}) to split the "
            f"lines into a text and a label column; set data.delimiter"
        )
    return best


def parse_rows(text: str, path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) for every non-blank row."""
    # Tab-separated files (SMS Spam, many exports) do not quote; a stray '"' is text there.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, quoting=quoting)
    rows = []
    try:
        for row in reader:
            if any(field.strip() for field in row):
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV: {error}") from None
    return rows


def few_values(column: list[str]) -> bool:
    """Whether a column looks like labels: at least two values, repeated, and few of them."""
    distinct = len(set(column))
    few = 2 <= distinct <= max(2, min(100, round(2 * math.sqrt(len(column)))))
    return few and distinct < len(column)


def looks_like_header(first: list[str], rest: list[list[str]]) -> bool:
    """A first row is a header when a column below is numeric and it is not, or when a label
    column below never repeats its value."""
    if not rest:
        return False
    for index, cell in enumerate(first):
        column = [row[index] for row in rest if index < len(row)]
        if not column:
            continue
        if all(is_number(v) for v in column) and not is_number(cell):
            return True
        if few_values(column) and cell not in set(column) and len(cell) <= 40:
            return True
    return False


def column_index(ref, names: list[str] | None, width: int, key: str, path: Path) -> int:
    """A column by index (negative counts from the end) or, with a header, by name."""
    if isinstance(ref, int):
        if -width <= ref < width:
            return ref % width
        raise ConfigError(f"config error: '{key}' is {ref}, but {path} has {width} columns")
    if names is None:
        raise ConfigError(
            f"config error: '{key}' names column {ref!r}, but {path} has no header; "
            f"give a column index (0..{width - 1})"
        )
    if ref not in names:
        raise ConfigError(
            f"config error: '{key}' is {ref!r}, not a column of {path} (columns: "
            f"{', '.join(names)})"
        )
    return names.index(ref)


def choose_columns(rows: list[list[str]], names, config, path: Path) -> tuple[int, int]:
    """(text column, label column): as configured, else detected."""
    width = len(rows[0])
    if width < 2:
        raise DataError(f"{path}: needs a text and a label column, found {width} column")
    label = text = None
    if config.label_column != "auto":
        label = column_index(config.label_column, names, width, "data.label_column", path)
    if config.text_column != "auto":
        text = column_index(config.text_column, names, width, "data.text_column", path)
    columns = [[row[i] for row in rows] for i in range(width)]

    def name(i):
        return repr(names[i]) if names else str(i)

    if text is None:
        others = [i for i in range(width) if i != label]
        if label is None:  # the text column is never the label column: exclude likely labels
            others = [i for i in others if not few_values(columns[i])] or others
        text = max(others, key=lambda i: sum(map(len, columns[i])))
    if label is None:
        candidates = [i for i in range(width) if i != text and few_values(columns[i])]
        if not candidates:
            raise DataError(
                f"{path}: no column looks like labels (few distinct values) besides the text "
                f"column {name(text)}; set data.label_column"
            )
        if len(candidates) > 1:
            shown = ", ".join(name(i) for i in candidates)
            raise DataError(
                f"{path}: several columns could be the label: {shown}; which one? "
                f"set data.label_column"
            )
        label = candidates[0]
    if text == label:
        raise ConfigError("config error: 'data.text_column' and 'data.label_column' are the same")
    return text, label


@dataclass(frozen=True)
class CsvLayout:
    """How a CSV file was read, so the valid and test files are read the same way."""

    delimiter: str
    header: bool
    text: int
    label: int


def read_csv_texts(path: Path, config, layout: CsvLayout | None = None):
    """(texts, labels, layout) from a CSV/TSV file; columns and header given or detected."""
    source = decode(path)
    if layout is not None:
        delimiter = layout.delimiter
    elif config.delimiter == "auto":
        delimiter = sniff_delimiter(source, path)
    else:  # '\t' written in single quotes means a tab too
        delimiter = config.delimiter.encode().decode("unicode_escape")
    numbered = parse_rows(source, path, delimiter)
    if not numbered:
        raise DataError(f"{path} has no rows")
    widths = [len(row) for _, row in numbered]
    width = max(set(widths), key=widths.count)
    for line, row in numbered:
        if len(row) != width:
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, expected {width} "
                f"(delimiter {delimiter!r}; set data.delimiter if that is wrong)"
            )
    rows = [row for _, row in numbered]
    if layout is not None:
        header = layout.header
    elif config.header == "auto":
        header = looks_like_header(rows[0], rows[1 : SAMPLE_LINES * 10])
    else:
        header = config.header
    names = None
    if header:
        names, rows = [n.strip() for n in rows[0]], rows[1:]
        if not rows:
            raise DataError(f"{path} has a header but no data rows")
    if layout is None:
        text, label = choose_columns(rows, names, config, path)
        layout = CsvLayout(delimiter, bool(header), text, label)
    elif max(layout.text, layout.label) >= width:
        raise DataError(f"{path}: {width} columns, but the training file's layout needs more")
    texts = [row[layout.text] for row in rows]
    return texts, [row[layout.label].strip() for row in rows], layout


# --- JSON lines -----------------------------------------------------------------------------


def read_jsonl_texts(path: Path, config):
    """(texts, labels) from JSON lines (or one JSON array) of objects with the two fields."""
    source = decode(path)
    if source.lstrip().startswith("["):
        try:
            records = list(enumerate(json.loads(source), start=1))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {error.lineno}: not valid JSON: {error.msg}") from None
        where = "item"
    else:
        records, where = [], "line"
        for number, line in enumerate(source.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataError(f"{path}, line {number}: not valid JSON: {error.msg}") from None
    texts, labels = [], []
    for number, record in records:
        if not isinstance(record, dict):
            raise DataError(f"{path}, {where} {number}: expected a JSON object")
        for field in (config.text_field, config.label_field):
            if field not in record:
                raise DataError(
                    f"{path}, {where} {number}: no field {field!r} (fields: "
                    f"{', '.join(record)}); set data.text_field / data.label_field"
                )
        text, label = record[config.text_field], record[config.label_field]
        if not isinstance(text, str) or isinstance(label, dict | list) or label is None:
            raise DataError(
                f"{path}, {where} {number}: the text must be a string and the label a string "
                f"or a number"
            )
        texts.append(text)
        labels.append(str(label).strip())
    if not texts:
        raise DataError(f"{path} holds no records")
    return texts, labels


# --- a folder per class ---------------------------------------------------------------------


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.txt")))


def read_folder_texts(folder: Path, classes: list[str] | None = None):
    """(texts, labels): every .txt file of each class sub-folder (the folder's name)."""
    folders = class_folders(folder)
    if classes is not None:
        folders = [p for p in folders if p.name in classes]
    if len(folders) < 2:
        raise DataError(
            f"{folder}: expected one sub-folder of .txt files per class (at least two), "
            f"found {len(folders)}"
        )
    texts, labels = [], []
    for sub in folders:
        for file in sorted(sub.glob("*.txt")):
            texts.append(decode(file))
            labels.append(sub.name)
    return texts, labels


def given_splits(folder: Path) -> dict[str, Path]:
    """{split: folder} for an aclImdb-style tree with train/ (and test/, valid/) inside."""
    names = {"train": ("train",), "valid": ("valid", "validation", "dev"), "test": ("test",)}
    found = {}
    for split, candidates in names.items():
        for name in candidates:
            if (folder / name).is_dir() and class_folders(folder / name):
                found[split] = folder / name
                break
    return found if "train" in found else {}


def read_labelled_texts(path: Path, config, fmt: str, layout: CsvLayout | None = None):
    """(texts, labels, CSV layout or None) of one file or class-per-folder tree."""
    if fmt == "folders":
        if not path.is_dir():
            raise ConfigError(f"config error: data.format is folders, but {path} is a file")
        return (*read_folder_texts(path), None)
    if path.is_dir():
        raise ConfigError(f"config error: {path} is a folder; set data.format to folders (or auto)")
    if fmt == "jsonl":
        return (*read_jsonl_texts(path, config), None)
    return read_csv_texts(path, config, layout)
