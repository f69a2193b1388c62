"""Small helpers shared by the benchmarks: timing, warmed-up tftrain epochs, a result table."""

from __future__ import annotations

import time
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def warmed_trainer(tree: dict, run_dir: str):
    """A tftrain Trainer for the config `tree`, after one warm-up epoch (it traces the step)."""
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    trainer = Trainer(config_from_dict(tree), run_dir, quiet=True)
    trainer.loop.run_epoch("train", training=True)
    return trainer


def train_epoch(trainer, epoch: int) -> None:
    """One more training epoch of `trainer`, numbered `epoch` (its shuffle), from batch 0."""
    trainer.state.epoch.assign(epoch)
    trainer.state.step_in_epoch.assign(0)
    trainer.loop.run_epoch("train", training=True)


def table(rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    for row in rows:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    return "\n".join(lines)
