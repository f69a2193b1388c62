"""Built-in seq2seq tasks generated from the seed, offline: token reversal and date formats."""

from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tftrain.data.pairs import PairsConfig, PairsDataset
from tftrain.errors import ConfigError
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits


@dataclass(frozen=True)
class SyntheticPairsConfig(PairsConfig):
    task: Literal["reverse", "dates"] = "dates"
    num_train: int = field(default=20000, metadata=limits(ge=1))
    num_valid: int = field(default=1000, metadata=limits(ge=0))
    num_test: int = field(default=1000, metadata=limits(ge=0))
    min_length: int = field(default=3, metadata=limits(ge=1))  # reverse: tokens per sequence
    max_length: int = field(default=12, metadata=limits(ge=1))
    alphabet_size: int = field(default=20, metadata=limits(ge=2, le=26))

    def __post_init__(self):
        super().__post_init__()
        if self.min_length > self.max_length:
            raise FieldError("min_length", "must not exceed max_length")


MONTHS = [m.lower() for m in calendar.month_name[1:]]
DAYS = [d.lower() for d in calendar.day_name]
FIRST_DATE = datetime.date(1950, 1, 1)
DATE_SPAN = (datetime.date(2049, 12, 31) - FIRST_DATE).days + 1


def ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_forms(d: datetime.date) -> list[str]:
    """Surface forms of one date (day-first for numeric forms)."""
    month, short, day = MONTHS[d.month - 1], MONTHS[d.month - 1][:3], d.day
    weekday = DAYS[d.weekday()]
    return [
        f"the {ordinal(day)} of {month} {d.year}",
        f"{month} {day}, {d.year}",
        f"{day} {month} {d.year}",
        f"{day:02d}/{d.month:02d}/{d.year}",
        f"{short} {day} {d.year}",
        f"{ordinal(day)} {month} {d.year}",
        f"{weekday}, {month} {day}, {d.year}",
        f"{d.year} {month} {day}",
        f"{month} the {ordinal(day)}, {d.year}",
        f"{day}.{d.month}.{d.year}",
        f"{weekday[:3]} {day} {short} {d.year}",
        f"{month.capitalize()} {ordinal(day)} {d.year}",
    ]


FORMS_PER_DATE = len(date_forms(FIRST_DATE))


def date_pairs(rng, count: int) -> list[tuple[str, str]]:
    """`count` distinct (surface form, ISO date) pairs."""
    count = min(count, DATE_SPAN * FORMS_PER_DATE)
    picks = rng.choice(DATE_SPAN * FORMS_PER_DATE, size=count, replace=False)
    pairs = []
    for pick in picks:
        d = FIRST_DATE + datetime.timedelta(days=int(pick // FORMS_PER_DATE))
        pairs.append((date_forms(d)[pick % FORMS_PER_DATE], d.isoformat()))
    return pairs


def reverse_pairs(rng, count: int, config: SyntheticPairsConfig) -> list[tuple[str, str]]:
    letters = [chr(ord("a") + i) for i in range(config.alphabet_size)]
    pairs = []
    for _ in range(count):
        size = int(rng.integers(config.min_length, config.max_length + 1))
        tokens = [letters[i] for i in rng.integers(0, len(letters), size)]
        pairs.append((" ".join(tokens), " ".join(reversed(tokens))))
    return pairs


@datasets.register("synthetic_pairs")
class SyntheticPairs(PairsDataset):
    """Built-in seq2seq tasks, generated from the seed: token reversal and date formats."""

    Config = SyntheticPairsConfig
    description = "synthetic seq2seq tasks: 'reverse' tokens, 'dates' to ISO format (offline)"

    def raw_splits(self):
        cfg = self.config
        rng = np.random.default_rng([self.seed, 7])
        total = cfg.num_train + cfg.num_valid + cfg.num_test
        if cfg.task == "dates":
            pairs = date_pairs(rng, total)  # distinct pairs: no test pair is seen in training
        else:
            pairs = reverse_pairs(rng, total, cfg)
        if len(pairs) < total:
            raise ConfigError(f"config error: the dates task has only {len(pairs)} distinct pairs")
        return {
            "train": pairs[: cfg.num_train],
            "valid": pairs[cfg.num_train : cfg.num_train + cfg.num_valid],
            "test": pairs[cfg.num_train + cfg.num_valid :],
        }
