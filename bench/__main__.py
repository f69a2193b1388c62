"""`python -m bench [NAME ...]` runs every bench/bench_*.py benchmark (or the named ones) and
writes the median and range of each setting's tftrain/peer ratio to bench/results.json.

Each benchmark runs in a fresh Python process: TensorFlow's thread and device settings can only
be applied before it initialises, and one benchmark's settings must not leak into the next.
A benchmark reports through `bench.common.record`, which appends to the file this runner names
in $TFTRAIN_BENCH_RESULTS. results.json keeps the entries of benchmarks not run this time, each
with its own date. `--dir` runs another folder's bench_*.py files (and writes its results.json
there), as the tests do.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS_ENV, runs, table

PROJECT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (mlp, seq2seq, ...)")
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent, help="bench folder")
    args = parser.parse_args(argv)
    folder = args.dir.resolve()
    available = sorted(p.stem.removeprefix("bench_") for p in folder.glob("bench_*.py"))
    names = [name.removeprefix("bench_") for name in args.names] or available
    if unknown := sorted(set(names) - set(available)):
        parser.error(f"no benchmark {', '.join(unknown)} in {folder}; there are {available}")
    count = runs()  # checks $TFTRAIN_BENCH_RUNS before anything runs
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    records, failed = run_benchmarks(folder, names)
    records = [entry | {"date": date} for entry in records]
    results_file = folder / "results.json"
    previous = json.loads(results_file.read_text()) if results_file.exists() else {}
    results = {"date": date, "machine": machine(), "runs_per_benchmark": count}
    results |= merge(previous, records, names, failed)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{summary(records)}\n\nwritten to {results_file}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def run_benchmarks(folder: Path, names: list[str]) -> tuple[list[dict], list[str]]:
    """Run each bench_NAME.py in a process of its own; what they recorded, and who failed."""
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        records_file = Path(work) / "records.jsonl"
        python_path = [str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = os.environ | {
            RESULTS_ENV: str(records_file),
            "PYTHONPATH": os.pathsep.join(python_path),
        }
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for name in names:
            print(f"\n== bench_{name} ==", flush=True)
            started = time.perf_counter()
            # One broken benchmark must not hide the others.
            script = folder / f"bench_{name}.py"
            code = subprocess.run([sys.executable, script], cwd=PROJECT, env=env).returncode
            if code:
                failed.append(name)
                print(f"bench_{name} failed with exit code {code}", flush=True)
            print(f"(bench_{name}: {time.perf_counter() - started:.0f} s)", flush=True)
        text = records_file.read_text(encoding="utf-8") if records_file.exists() else ""
    return [json.loads(line) for line in text.splitlines()], failed


def merge(previous: dict, records: list[dict], ran: list[str], failed: list[str]) -> dict:
    """`previous` results with the benchmarks in `records` replaced as a whole (a renamed
    setting leaves no stale entry) and the failures of those in `ran` brought up to date."""
    fresh: dict = {}
    for entry in records:
        fresh.setdefault(entry["benchmark"], {})[entry["setting"]] = entry
    benchmarks = previous.get("benchmarks", {}) | fresh
    still_failed = [name for name in previous.get("failed", []) if name not in ran]
    return {
        "benchmarks": dict(sorted(benchmarks.items())),
        "failed": sorted(still_failed + failed),
    }


def machine() -> dict:
    """What the figures were measured on; versions from package metadata (no TensorFlow start)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return {
        "cpu": models[0] if models else platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow") or version("tensorflow-cpu"),
        "keras": version("keras"),
        "gensim": version("gensim"),
    }


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def summary(records: list[dict]) -> str:
    rows = [
        (
            e["benchmark"],
            e["setting"],
            e["peer"],
            f"{e['median']:.2f}",
            f"{e['min']:.2f}-{e['max']:.2f}",
            e["runs"],
        )
        for e in records
    ]
    headers = ("benchmark", "setting", "tftrain/peer", "median", "min-max", "runs")
    return table(rows, headers) if rows else "no results recorded"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
