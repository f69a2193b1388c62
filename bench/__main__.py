"""`python -m bench [NAME ...]` runs every bench/bench_*.py benchmark (or the named ones).

Each benchmark runs in a fresh Python process: TensorFlow's thread and device settings can only
be applied before it initialises, and one benchmark's settings must not leak into the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    failed = []
    for name in names:
        module_name = name if name.startswith("bench_") else f"bench_{name}"
        print(f"\n== {module_name} ==", flush=True)
        started = time.perf_counter()
        # One broken benchmark must not hide the others.
        result = subprocess.run(
            [sys.executable, "-m", f"bench.{module_name}"], cwd=PROJECT, env=env
        )
        if result.returncode != 0:
            failed.append(module_name)
            print(f"{module_name} failed with exit code {result.returncode}", flush=True)
        print(f"({module_name}: {time.perf_counter() - started:.0f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
