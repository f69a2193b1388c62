"""Small helpers shared by the benchmarks: timing, warmed-up tftrain epochs, reported ratios."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# `python -m bench` points this at a file; each record() appends one JSON line to it.
RESULTS_ENV = "TFTRAIN_BENCH_RESULTS"
RUNS_ENV = "TFTRAIN_BENCH_RUNS"


def runs() -> int:
    """Alternated (tftrain, peer) runs per setting: $TFTRAIN_BENCH_RUNS, default 5."""
    value = os.environ.get(RUNS_ENV, "5")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{RUNS_ENV}={value!r}: expected a whole number of runs, 1 or more")
    return int(value)


def summarize(ratios: list[float]) -> dict:
    """Median, min, max and number of `ratios`."""
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "runs": len(ratios),
    }


def record(
    benchmark: str, setting: str, ratios: list[float], *, peer: str, unit: str, **details
) -> dict:
    """Print the tftrain/peer ratios' median and range; append them to $TFTRAIN_BENCH_RESULTS.

    Each ratio is tftrain's rate over the peer's in one alternated run (above 1: tftrain
    faster). `details` (throughputs, sizes, ...) go to the results file as they are.
    """
    ratios = [float(r) for r in ratios]
    summary = summarize(ratios)
    print(
        f"{benchmark}  {setting}  tftrain/{peer}: median {summary['median']:.2f} "
        f"({summary['min']:.2f}-{summary['max']:.2f}, {summary['runs']} runs)",
        flush=True,
    )
    entry = {"benchmark": benchmark, "setting": setting, "peer": peer, "unit": unit}
    entry |= {"ratios": ratios, **summary, "details": details}
    if path := os.environ.get(RESULTS_ENV):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
    return entry


def compare(
    benchmark: str,
    setting: str,
    *,
    ours: Callable[[int], object],
    theirs: Callable[[int], object],
    work: float,
    peer: str,
    unit: str,
    **details,
) -> dict:
    """Time runs() alternated pairs `ours(run)`, `theirs(run)` (run = 1, 2, ...) and record them.

    Both sides do `work` (examples, tokens, ...) per call, so a run's ratio is the peer's
    seconds over tftrain's. Alternating puts load from other processes on both sides.
    """
    pairs = [(timed(ours, run), timed(theirs, run)) for run in range(1, runs() + 1)]
    ours_rate, peer_rate = (
        statistics.median(work / s for s in side) for side in zip(*pairs, strict=True)
    )
    print(f"  medians: tftrain {ours_rate:,.0f} {unit}, {peer} {peer_rate:,.0f} {unit}")
    return record(
        benchmark,
        setting,
        [peer_seconds / our_seconds for our_seconds, peer_seconds in pairs],
        peer=peer,
        unit=unit,
        tftrain_rate=ours_rate,
        peer_rate=peer_rate,
        work=work,
        **details,
    )


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
