"""Successive halving for `tftrain sweep --early-stop`: every trial trains to a first rung of
epochs, the better half goes on to twice as many, and so on up to `train.epochs`.

A trial's score at a rung is its best validation value up to that epoch, read from its
metrics.jsonl, so a resumed sweep promotes exactly the trials the first attempt promoted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def rungs(epochs: int, trials: int) -> list[int]:
    """Epochs of each round: halving `trials` down to one takes log2(trials) rounds, e.g.
    8 trials of 12 epochs -> [2, 3, 6, 12] (never below 1 epoch, never repeated)."""
    rounds = max(int(math.log2(trials)) if trials > 1 else 0, 0)
    epochs_of = [max(1, math.ceil(epochs / 2**k)) for k in range(rounds, -1, -1)]
    return sorted(set(epochs_of))


def score_at(run_dir: Path, metric: str, mode: str, epoch: int) -> float | None:
    """The best validation `metric` up to `epoch` (None: never evaluated)."""
    values = []
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        record = json.loads(line)
        at = record.get("epoch")
        if record.get("split") == "valid" and metric in record and at is not None:
            if at <= epoch + 1e-9:
                values.append(record[metric])
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def promoted(trials: list, scores: dict, mode: str) -> list:
    """The better half (rounded up) of the trials that have a score, in trial order."""
    scored = [t for t in trials if scores.get(t.index) is not None]
    sign = -1 if mode == "max" else 1
    best = sorted(scored, key=lambda t: (sign * scores[t.index], t.index))
    keep = {t.index for t in best[: math.ceil(len(trials) / 2)]}
    return [t for t in trials if t.index in keep]
