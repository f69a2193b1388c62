"""`python -m bench [NAME ...]` runs every bench/bench_*.py module's main() (or the named ones)."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    failed = []
    for name in names:
        module_name = name if name.startswith("bench_") else f"bench_{name}"
        print(f"\n== {module_name} ==", flush=True)
        started = time.perf_counter()
        # A benchmark's own argparse must not see the names given to this runner.
        sys.argv = [f"bench/{module_name}.py"]
        try:
            importlib.import_module(f"bench.{module_name}").main()
        except Exception as error:  # one broken benchmark must not hide the others
            failed.append(module_name)
            print(f"{module_name} failed: {type(error).__name__}: {error}", flush=True)
        print(f"({module_name}: {time.perf_counter() - started:.0f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
