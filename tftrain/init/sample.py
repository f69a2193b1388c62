"""Reading a sample of a file: its first lines, its line count, and what each column holds."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tftrain.data.tabular import is_number
from tftrain.errors import DataError, decode_utf8

SAMPLE_BYTES = 1 << 20  # profile the first MiB: enough rows to judge, fast on any file
COUNT_BYTES = 64 << 20  # count lines exactly up to this size, estimate beyond
TIME_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%Y-%m",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%H:%M:%S",
)
LABEL_NAMES = {"label", "labels", "class", "target", "y", "category", "sentiment", "tag"}


@dataclass(frozen=True)
class Head:
    """The first lines of a text file (all of them when `complete`) and its total line count."""

    lines: list[str]
    complete: bool
    total_lines: int
    exact: bool  # total_lines counted, not estimated

    def count_text(self, noun: str) -> str:
        if self.exact:
            return f"{self.total_lines:,} {noun}"
        return f"about {self.total_lines:,} {noun} (estimated from the first MiB)"


def read_head(path: Path, raw: bytes | None = None, *, name: str = "", size: int = 0) -> Head:
    """A file's first SAMPLE_BYTES as lines (a cut last line dropped) and its line count.

    `raw` and `size` give the start and size of something else than a file (a .zip member).
    """
    name = name or str(path)
    if raw is None:
        try:
            size = path.stat().st_size
            with path.open("rb") as handle:
                raw = handle.read(SAMPLE_BYTES)
        except OSError as error:
            raise DataError(f"cannot read {path}: {error}") from None
    else:
        size, raw = size or len(raw), raw[:SAMPLE_BYTES]
    complete = size <= SAMPLE_BYTES
    if not complete and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]
    lines = [line.rstrip("\r") for line in decode_utf8(raw, name).split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if complete:
        return Head(lines, True, len(lines), True)
    if size <= COUNT_BYTES and path.is_file() and path.stat().st_size == size:
        total = count_newlines(path)
        return Head(lines, False, total, True)
    return Head(lines, False, int(round(len(lines) * size / max(len(raw), 1), -2)), False)


def count_newlines(source) -> int:
    """Lines of a file path or an open binary file (a last line without newline counts)."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return count_newlines(handle)
    count, last = 0, b"\n"
    while block := source.read(1 << 22):
        count, last = count + block.count(b"\n"), block[-1:]
    return count + (last != b"\n")


def is_time(text: str) -> bool:
    text = text.strip()
    if is_number(text) or len(text) < 5:
        return False
    try:
        datetime.datetime.fromisoformat(text)
        return True
    except ValueError:
        pass
    for pattern in TIME_FORMATS:
        try:
            datetime.datetime.strptime(text, pattern)
            return True
        except ValueError:
            continue
    return False


WORD = re.compile(r"\w+")


@dataclass
class Column:
    """One column of a sample: its values and what they look like."""

    name: str
    index: int
    values: list[str]

    @cached_property
    def present(self) -> list[str]:
        return [v.strip() for v in self.values if v.strip()]

    @property
    def missing(self) -> int:
        return len(self.values) - len(self.present)

    @cached_property
    def numeric(self) -> bool:
        return bool(self.present) and all(is_number(v) for v in self.present)

    @cached_property
    def integer(self) -> bool:
        return self.numeric and all(float(v).is_integer() for v in self.present)

    @cached_property
    def time(self) -> bool:
        return bool(self.present) and all(is_time(v) for v in self.present[:200])

    @cached_property
    def distinct(self) -> int:
        return len(set(self.present))

    @cached_property
    def mean_words(self) -> float:
        return sum(len(WORD.findall(v)) for v in self.present) / max(len(self.present), 1)

    @property
    def kind(self) -> str:
        """time, number, text (free text, many distinct values) or category (short labels)."""
        if self.time:
            return "time"
        if self.numeric:
            return "number"
        if self.mean_words >= 3 and self.distinct > 0.5 * len(self.present):
            return "text"
        return "category"

    @property
    def few_values(self) -> bool:
        """Few enough distinct values to be class labels."""
        limit = min(50, max(2, len(self.present) // 5))
        if self.kind == "category":
            return 2 <= self.distinct <= limit
        return self.integer and 2 <= self.distinct <= min(limit, 20)

    @property
    def named_like_label(self) -> bool:
        return self.name.strip().lower() in LABEL_NAMES

    @cached_property
    def counts(self) -> dict[str, int]:
        """Each value's count in the sample, most common first."""
        counts: dict[str, int] = {}
        for value in self.present:
            counts[value] = counts.get(value, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

    def shares(self, top: int = 5) -> str:
        """'ham 87%, spam 13%' for the most common values of the sample."""
        ranked = list(self.counts.items())
        shown = [f"{value} {100 * n / len(self.present):.0f}%" for value, n in ranked[:top]]
        return ", ".join(shown) + (", ..." if len(ranked) > top else "")

    def percentile_words(self, q: float) -> int:
        lengths = sorted(len(WORD.findall(v)) for v in self.present) or [0]
        return lengths[min(len(lengths) - 1, int(q * len(lengths)))]

    def describe(self) -> str:
        example = self.present[0] if self.present else ""
        if len(example) > 30:
            example = example[:27] + "..."
        return f"{self.name} ({self.kind}, e.g. {example!r})"
