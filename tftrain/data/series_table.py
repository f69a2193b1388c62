"""Reading a series CSV: header and delimiter, the time column, value columns, missing values.

A `SeriesTable` is the file as numbers: times (datetime64, numbers, or None for row order),
the chosen value columns (targets first, then features) and the file line of every row, so
errors name the line a user must fix.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tftrain.errors import ConfigError, DataError, decode_utf8

MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "?", "-"})
# Tried in order after ISO 8601; the first that reads every value of a column wins, so
# day-first and month-first dates are told apart by a value such as 13/01.
TIME_FORMATS = ("%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%d.%m.%Y", "%Y-%m", "%Y/%m", "%d/%m/%Y %H:%M")


@dataclass
class SeriesTable:
    """Value columns of a series file, in time order."""

    path: Path
    columns: list[str]  # targets first, then features
    values: np.ndarray  # (rows, len(columns)) float64, NaN where missing
    times: np.ndarray | None  # datetime64[s] or float64, None = row order
    time_name: str | None
    lines: np.ndarray  # file line of each row (1-based)

    def __len__(self) -> int:
        return len(self.values)


def read_rows(path: Path) -> tuple[list[str], list[list[str]], int]:
    """(column names, data rows, line of the first data row); the header is detected."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from None
    text = decode_utf8(raw, path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(text)
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    numbered = [(i + 1, row) for i, row in enumerate(rows) if any(c.strip() for c in row)]
    if not numbered:
        raise DataError(f"{path} is empty")
    first_line, first = numbered[0]
    header = any(kind(cell) == "text" for cell in first)
    names = [c.strip() for c in first] if header else [f"column{i}" for i in range(len(first))]
    data = numbered[1:] if header else numbered
    if not data:
        raise DataError(f"{path} has a header but no data rows")
    for line, row in data:
        if len(row) != len(names):
            raise DataError(f"{path}, line {line}: {len(row)} fields, expected {len(names)}")
    return names, [row for _, row in data], data[0][0]


def sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def kind(cell: str) -> str:
    """ "missing", "number", "time" or "text" for one cell."""
    cell = cell.strip()
    if cell.lower() in MISSING_TOKENS:
        return "missing"
    try:
        float(cell)
        return "number"
    except ValueError:
        pass
    return "time" if time_format([cell]) else "text"


def parse_time(cell: str, fmt: str) -> datetime:
    cell = cell.strip()
    moment = datetime.fromisoformat(cell) if fmt == "iso" else datetime.strptime(cell, fmt)
    if moment.tzinfo is not None:  # compare instants: aware times become naive UTC
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def time_format(cells: list[str]) -> str | None:
    """The first format that reads every cell as a date/time, or None."""
    for fmt in ("iso", *TIME_FORMATS):
        try:
            for cell in cells:
                if cell.strip().replace(".", "", 1).isdigit():
                    return None  # plain numbers are values, not times
                parse_time(cell, fmt)
            return fmt
        except ValueError:
            continue
    return None


def column_index(choice, names: list[str], path: Path, key: str) -> int:
    """A column given by name or index -> its index; errors name the config key."""
    if isinstance(choice, int):
        if not -len(names) <= choice < len(names):
            raise ConfigError(
                f"config error: '{key}' is column {choice}, but {path} has {len(names)} columns"
            )
        return choice % len(names)
    if choice not in names:
        raise ConfigError(
            f"config error: '{key}': {path} has no column {choice!r}; columns are {names}"
        )
    return names.index(choice)


def find_time_column(time_column, names, rows, path) -> int | None:
    if time_column is None:
        return None
    if time_column != "auto":
        return column_index(time_column, names, path, "data.time_column")
    sample = rows[:50]
    for index in range(len(names)):
        cells = [row[index] for row in sample if row[index].strip()]
        if cells and time_format(cells):
            return index
    return None  # no date column: row order


def numeric_columns(names, rows, skip) -> list[int]:
    """Columns whose every non-missing cell (of the rows given) is a number."""
    found = []
    for index in range(len(names)):
        if index in skip:
            continue
        kinds = {kind(row[index]) for row in rows}
        if "number" in kinds and kinds <= {"number", "missing"}:
            found.append(index)
    return found


def choose_columns(target, features, names, rows, time_index, path) -> list[int]:
    """Indices of the target column(s), then the feature columns."""
    feature_ids = [column_index(f, names, path, "data.features") for f in features]
    if target == "auto":
        skip = {time_index, *feature_ids}
        candidates = numeric_columns(names, rows[:200], skip)  # a bad cell later names its line
        if len(candidates) != 1:
            found = ", ".join(names[i] for i in candidates) or "none"
            raise ConfigError(
                f"config error: 'data.target' is auto but {path} has {len(candidates)} numeric "
                f"value columns ({found}); set data.target to a column name (or a list)"
            )
        target_ids = candidates
    else:
        chosen = [target] if isinstance(target, str | int) else list(target)
        target_ids = [column_index(t, names, path, "data.target") for t in chosen]
    overlap = set(target_ids) & ({time_index} | set(feature_ids))
    if overlap:
        raise ConfigError(
            f"config error: column {names[overlap.pop()]!r} is chosen twice "
            f"(data.target, data.features and data.time_column must differ)"
        )
    return target_ids + feature_ids


def read_series(path: Path, *, time_column="auto", target="auto", features=()) -> SeriesTable:
    """The series in a CSV file, checked: numbers in value columns, time strictly increasing."""
    names, rows, first_line = read_rows(path)
    lines = np.arange(first_line, first_line + len(rows))
    time_index = find_time_column(time_column, names, rows, path)
    chosen = choose_columns(target, features, names, rows, time_index, path)
    values = np.empty((len(rows), len(chosen)), dtype=np.float64)
    for j, index in enumerate(chosen):
        for i, row in enumerate(rows):
            cell = row[index].strip()
            if cell.lower() in MISSING_TOKENS:
                values[i, j] = np.nan
                continue
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}, line {lines[i]}: column {names[index]!r} holds {cell!r}, not a number"
                ) from None
    times = None
    if time_index is not None:
        times = read_times([row[time_index] for row in rows], lines, path, names[time_index])
        check_increasing(times, lines, path, names[time_index])
    return SeriesTable(
        path=path,
        columns=[names[i] for i in chosen],
        values=values,
        times=times,
        time_name=names[time_index] if time_index is not None else None,
        lines=lines,
    )


def read_times(cells: list[str], lines, path: Path, name: str) -> np.ndarray:
    """A time column as datetime64[s] (dates) or float64 (plain numbers)."""
    if all(kind(c) == "number" for c in cells):
        return np.asarray([float(c) for c in cells])
    fmt = time_format(cells[:50])
    for i, cell in enumerate(cells):
        try:
            if fmt is None:
                raise ValueError
            parse_time(cell, fmt)
        except ValueError:
            raise DataError(
                f"{path}, line {lines[i]}: time column {name!r} holds {cell.strip()!r}, "
                f"not a date/time like the lines before it"
            ) from None
    return np.asarray([parse_time(c, fmt) for c in cells], dtype="datetime64[s]")


def check_increasing(times: np.ndarray, lines, path: Path, name: str) -> None:
    """Windows assume time order: a step back (or a repeated time) names its line."""
    steps = np.diff(times)
    bad = np.flatnonzero(steps <= steps.dtype.type(0))
    if len(bad):
        i = int(bad[0]) + 1
        raise DataError(
            f"{path}, line {lines[i]}: time {format_time(times[i])} is not after "
            f"{format_time(times[i - 1])} (line {lines[i - 1]}); the time column {name!r} must "
            f"increase (sort the file by time and remove duplicates)"
        )


def format_time(value) -> str:
    if isinstance(value, np.datetime64):
        text = str(value.astype("datetime64[s]"))
        return text.removesuffix("T00:00:00")
    return f"{float(value):g}"


def fill_missing(table: SeriesTable, rule: str) -> str | None:
    """Apply `data.missing` in place; returns a report line, or None if nothing was missing."""
    holes = np.isnan(table.values)
    if not holes.any():
        return None
    rows = np.flatnonzero(holes.any(axis=1))
    shown = ", ".join(str(table.lines[i]) for i in rows[:5]) + (", ..." if len(rows) > 5 else "")
    per_column = ", ".join(
        f"{name}: {count}"
        for name, count in zip(table.columns, holes.sum(axis=0), strict=True)
        if count
    )
    where = f"{holes.sum()} missing values ({per_column}) on lines {shown}"
    if rule == "error":
        raise DataError(
            f"{table.path}: {where}; set data.missing to drop, ffill or interpolate to fill them"
        )
    if rule == "drop":
        keep = ~holes.any(axis=1)
        table.values, table.lines = table.values[keep], table.lines[keep]
        table.times = table.times[keep] if table.times is not None else None
    else:
        for j in range(table.values.shape[1]):
            table.values[:, j] = fill_column(table.values[:, j], rule, table, where)
    return f"{table.path}: {where}: {'dropped' if rule == 'drop' else 'filled by ' + rule}"


def fill_column(column: np.ndarray, rule: str, table: SeriesTable, where: str) -> np.ndarray:
    known = np.flatnonzero(~np.isnan(column))
    if len(known) == 0:
        raise DataError(f"{table.path}: a value column is entirely missing ({where})")
    if rule == "ffill":
        # Leading holes have no past value: they take the first known one.
        last = np.maximum.accumulate(np.where(np.isnan(column), 0, np.arange(len(column))))
        filled = column[last]
        filled[: known[0]] = column[known[0]]
        return filled
    # interpolate: linear in time where times are known, else in row order; ends held flat.
    position = (
        table.times.astype("datetime64[s]").astype(np.float64)
        if table.times is not None and table.times.dtype.kind == "M"
        else (table.times if table.times is not None else np.arange(len(column), dtype=float))
    )
    return np.interp(position, position[known], column[known])
