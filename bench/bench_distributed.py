"""Distributed training throughput on this machine: 1 and 2 workers and mirrored vs 1 process.

Same MLP (500 hidden), same data (MNIST from ../shared/data when present, else digits tiled),
same global batch, same number of steps; every setting runs in fresh processes (devices and
TF_CONFIG must be set before TensorFlow starts). Figures are global examples per second from
the training log windows after the first (the first includes tracing). On a 2-core machine
with every process on the same cores, extra workers add all-reduce and gRPC work and no
compute, so no speed-up is expected: the point is that it runs and the figures are honest.
There is no peer library here: each of runs() rounds runs 1 process, then every other setting,
and a setting's ratio is its rate over that round's 1 process (recorded with peer "1 process";
above 1 would be a speed-up).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import SHARED_DATA, record, runs

BATCH = 128
STEPS = 240
WINDOW = 40


def config_tree() -> tuple[dict, str]:
    mnist = SHARED_DATA / "mnist"
    if (mnist / "train-images-idx3-ubyte.gz").exists():
        data, label = {"type": "idx", "path": str(mnist)}, "MNIST"
    else:
        data, label = {"type": "digits", "test_fraction": 0.0, "valid_fraction": 0.0}, "digits"
    tree = {
        "name": "bench_distributed",
        "model": {"type": "softmax", "hidden_units": [500]},
        "data": data,
        "train": {
            "batch_size": BATCH,
            "epochs": 1000,
            "max_steps": STEPS,
            "steps_per_loop": 20,
            "log_every_steps": WINDOW,
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
        },
        "eval": {"final_splits": [], "max_batches": 1},
        "summaries": {"enabled": False},
    }
    return tree, label


def rate(run_dir: Path) -> float:
    """Mean examples/second over the training log windows after the first."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["examples_per_second"] for r in records if r.get("split") == "train"]
    steady = rates[1:] or rates
    return sum(steady) / len(steady)


def run(args: list[str]) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "tftrain", *args], capture_output=True, text=True, env=env
    )
    if result.returncode:
        raise RuntimeError(
            f"tftrain {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-3000:]}"
        )


def measure(config: Path, command: list[str], extra: list[str]) -> float:
    """Global examples/second of one `tftrain` run of `config`, in a run directory of its own."""
    run_dir = Path(tempfile.mkdtemp(dir=config.parent)) / "run"
    run([*command, str(config), "--run-dir", str(run_dir), "--quiet", *extra])
    return rate(run_dir)


SETTINGS = {  # name: (tftrain command, extra options); each compared with 1 process
    "1 worker (multi_worker)": (["launch", "--workers", "1"], []),
    "2 workers (multi_worker, 127.0.0.1)": (["launch", "--workers", "2"], []),
    "mirrored, 2 logical CPUs": (
        ["fit"],
        ["--set", "device.strategy=mirrored", "--set", "device.logical_cpus=2"],
    ),
}


def main() -> None:
    tree, label = config_tree()
    print(
        f"MLP 500 hidden on {label}, global batch {BATCH}, {STEPS} steps, "
        f"{os.cpu_count()} CPU cores, {runs()} rounds (global examples/second)"
    )
    baseline, rates = [], {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "config.yaml"
        config.write_text(yaml.safe_dump(tree))
        for _ in range(runs()):
            baseline.append(measure(config, ["fit"], []))
            for name, (command, extra) in SETTINGS.items():
                rates[name].append(measure(config, command, extra))
    for name, own in rates.items():
        print(
            f"  medians: {statistics.median(own):,.0f} examples/s, 1 process {statistics.median(baseline):,.0f}"
        )
        record(
            "distributed",
            name,
            [r / b for r, b in zip(own, baseline, strict=True)],
            peer="1 process",
            unit="examples/s",
            tftrain_rate=statistics.median(own),
            peer_rate=statistics.median(baseline),
            data=label,
            batch=BATCH,
            steps=STEPS,
        )


if __name__ == "__main__":
    main()
