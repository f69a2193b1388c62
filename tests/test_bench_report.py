"""`python -m bench` reports each setting's median and min-max of tftrain/peer ratios in
results.json, merges a partial run into it and lists failures; stand-in benchmarks, no training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import PROJECT

RECORDING = """
import json, os
from bench.common import record
for setting, ratios in json.loads(os.environ["FAKE_RATIOS"]).items():
    record("{name}", setting, ratios, peer="keras fit", unit="examples/s", batch=100)
"""


def bench(folder, *names, ratios: dict, runs: int = 3) -> subprocess.CompletedProcess:
    env = os.environ | {"FAKE_RATIOS": json.dumps(ratios), "TFTRAIN_BENCH_RUNS": str(runs)}
    env["PYTHONPATH"] = str(PROJECT)
    return subprocess.run(
        [sys.executable, "-m", "bench", "--dir", str(folder), *names],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_results_json_medians_ranges_merge_and_failures(tmp_path):
    (tmp_path / "bench_fast.py").write_text(RECORDING.format(name="fast"))
    (tmp_path / "bench_other.py").write_text(RECORDING.format(name="other"))
    (tmp_path / "bench_broken.py").write_text("raise SystemExit('broken on purpose')\n")
    first = {"1 step per call": [1.0, 0.8, 1.3], "50 steps per call": [1.1, 0.9, 1.2, 1.0]}

    result = bench(tmp_path, ratios=first)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fast  1 step per call  tftrain/keras fit: median 1.00 (0.80-1.30, 3 runs)" in (
        result.stdout
    )
    assert "failed: broken" in result.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["failed"] == ["broken"]
    assert results["runs_per_benchmark"] == 3
    assert results["machine"]["cores"] == os.cpu_count()
    assert sorted(results["benchmarks"]) == ["fast", "other"]
    entry = results["benchmarks"]["fast"]["50 steps per call"]
    assert entry["peer"] == "keras fit" and entry["unit"] == "examples/s"
    assert entry["ratios"] == [1.1, 0.9, 1.2, 1.0]
    assert (entry["median"], entry["min"], entry["max"], entry["runs"]) == (1.05, 0.9, 1.2, 4)
    assert entry["details"] == {"batch": 100}
    assert entry["date"] == results["date"]

    # Running one benchmark replaces its entries (a dropped setting goes) and keeps the others'
    # entries with their own dates; a failure not re-run stays listed.
    results["benchmarks"]["other"]["1 step per call"]["date"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / "results.json").write_text(json.dumps(results))
    result = bench(tmp_path, "fast", ratios={"1 step per call": [2.0, 3.0]}, runs=2)
    assert result.returncode == 0, result.stdout + result.stderr
    merged = json.loads((tmp_path / "results.json").read_text())
    assert list(merged["benchmarks"]["fast"]) == ["1 step per call"]
    assert merged["benchmarks"]["fast"]["1 step per call"]["median"] == 2.5
    assert merged["benchmarks"]["other"] == results["benchmarks"]["other"]
    assert merged["failed"] == ["broken"] and merged["runs_per_benchmark"] == 2

    (tmp_path / "bench_broken.py").write_text(RECORDING.format(name="broken"))
    result = bench(tmp_path, "bench_broken", ratios={"fixed": [1.0]})
    assert result.returncode == 0, result.stdout + result.stderr
    merged = json.loads((tmp_path / "results.json").read_text())
    assert merged["failed"] == [] and sorted(merged["benchmarks"]) == ["broken", "fast", "other"]


def test_unknown_benchmark_is_refused(tmp_path):
    result = bench(tmp_path, "nope", ratios={})
    assert result.returncode == 2 and "no benchmark nope" in result.stderr
    assert not (tmp_path / "results.json").exists()


def test_compare_times_alternated_runs_and_ratio_is_tftrain_over_peer(tmp_path, monkeypatch):
    from bench.common import compare

    log = tmp_path / "records.jsonl"
    monkeypatch.setenv("TFTRAIN_BENCH_RESULTS", str(log))
    monkeypatch.setenv("TFTRAIN_BENCH_RUNS", "3")
    calls = []

    def side(name, seconds):
        return lambda run: calls.append((name, run)) or time.sleep(seconds)

    entry = compare(
        "toy",
        "sleeps",
        ours=side("ours", 0.005),
        theirs=side("theirs", 0.05),
        work=10.0,
        peer="keras fit",
        unit="examples/s",
    )
    assert calls == [
        ("ours", 1),
        ("theirs", 1),
        ("ours", 2),
        ("theirs", 2),
        ("ours", 3),
        ("theirs", 3),
    ]
    assert entry["runs"] == 3 and 1.0 < entry["min"] <= entry["median"] <= entry["max"]
    assert entry["details"]["tftrain_rate"] > entry["details"]["peer_rate"]
    assert json.loads(log.read_text()) == entry


def test_analogy_summary_compares_means_with_standard_errors(capsys):
    from bench.bench_word2vec import analogy_summary

    summary = analogy_summary({"tftrain": [2.0, 3.0, 4.0], "gensim": [3.0, 3.0, 3.0, 3.0]})
    assert summary["tftrain_analogy_mean"] == 3.0 and summary["gensim_analogy_mean"] == 3.0
    assert abs(summary["tftrain_analogy_error"] - 1.0 / 3**0.5) < 1e-12
    assert summary["gensim_analogy_error"] == 0.0
    assert summary["analogy_difference"] == 0.0
    assert abs(summary["analogy_difference_error"] - 1.0 / 3**0.5) < 1e-12
    assert "+0.00 ± 0.58 points" in capsys.readouterr().out
