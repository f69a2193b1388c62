"""`tftrain runs`: the table of run directories with every status (finished, running, failed,
stopped) from real runs, `--json`, `--sort` and `runs diff`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import PROJECT

QUICK = PROJECT / "configs" / "quickstart.yaml"


def table(cli, *args) -> dict[str, list[str]]:
    """`tftrain runs ARGS` as {name: cells}, checking the header."""
    lines = cli("runs", *args).stdout.splitlines()
    assert lines[0].split()[:6] == ["name", "model", "dataset", "status", "step", "epoch"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_runs_lists_every_status_sorts_and_diffs(cli, tmp_path):
    runs = tmp_path / "runs"
    cli("fit", QUICK, "--run-dir", runs / "done", "--quiet", "--set", "train.epochs=1")
    cli(
        "fit", QUICK, "--run-dir", runs / "done_wide", "--quiet",
        "--set", "train.epochs=2", "--set", "model.hidden_units=[256]",
    )  # fmt: skip
    cli(
        "fit",
        QUICK,
        "--run-dir",
        runs / "bad",
        "--quiet",
        "--set",
        "train.epochs=1",
        "--set",
        "train.optimizer.learning_rate=1e30",
        "--set",
        "train.on_nan=stop",
        expect=1,
    )  # a real failure: the loss overflows at once
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TF_CONFIG", None)
    live = subprocess.Popen(
        [sys.executable, "-m", "tftrain", "fit", QUICK, "--run-dir", runs / "live", "--quiet",
         "--set", "train.epochs=500", "--set", "train.early_stopping.patience=0"],
        cwd=PROJECT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (runs / "live" / "checkpoints" / "ckpt-0.index").exists():
            assert time.time() < deadline and live.poll() is None, "the live run did not start"
            time.sleep(0.1)
        rows = table(cli, runs)
        assert rows["live"][3] == "running"
        live_wall = float(rows["live"][-1])
        assert live_wall > 0
    finally:
        live.send_signal(signal.SIGINT)
        _, stderr = live.communicate(timeout=600)
    assert live.returncode == 130, stderr

    rows = table(cli, runs)
    assert sorted(rows) == ["bad", "done", "done_wide", "live"]
    assert {name: cells[3] for name, cells in rows.items()} == {
        "bad": "failed",
        "done": "finished",
        "done_wide": "finished",
        "live": "stopped",
    }
    assert rows["done"][1:3] == ["softmax", "digits"] == rows["bad"][1:3]
    assert rows["done_wide"][5] == "2" and rows["done"][5] == "1"

    listed = json.loads(cli("runs", runs, "--json").stdout)
    by_name = {row["name"]: row for row in listed}
    for name in ("done", "done_wide"):
        record = json.loads((runs / name / "run.json").read_text())
        assert by_name[name]["final"] == record["final"]
        assert by_name[name]["step"] == record["step"]
        assert by_name[name]["best"]["metric"] == "accuracy"
        assert 0 < by_name[name]["wall_seconds"] < 300
    assert "NaN" in by_name["bad"]["failure"]

    # Best first by test accuracy (higher is better), by test loss (lower is better).
    accuracy = {name: by_name[name]["final"]["test"]["accuracy"] for name in ("done", "done_wide")}
    best = max(accuracy, key=accuracy.get)
    order = [
        row["name"]
        for row in json.loads(cli("runs", runs, "--json", "--sort", "test.accuracy").stdout)
    ]
    assert order[0] == best and set(order[2:]) == {"bad", "live"}
    order = [
        row["name"] for row in json.loads(cli("runs", runs, "--json", "--sort", "test.loss").stdout)
    ]
    loss = {name: by_name[name]["final"]["test"]["loss"] for name in ("done", "done_wide")}
    assert order[0] == min(loss, key=loss.get)
    bests = {name: by_name[name]["best"]["value"] for name in ("done", "done_wide")}
    order = [
        row["name"] for row in json.loads(cli("runs", runs, "--json", "--sort", "best").stdout)
    ]
    assert order[0] == max(bests, key=bests.get)
    assert "no run has the metric" in cli("runs", runs, "--sort", "test.bleu", expect=2).stderr

    diff = cli("runs", "diff", runs / "done", runs / "done_wide").stdout
    changed = {line.split()[0]: line.split()[1:] for line in diff.splitlines()[1:]}
    assert changed["model.hidden_units"] == ["[128]", "[256]"]
    assert changed["train.epochs"] == ["1", "2"]
    assert "seed" not in changed and "data.type" not in changed
    assert changed["test.accuracy"] == [f"{accuracy['done']:.4g}", f"{accuracy['done_wide']:.4g}"]


def test_runs_usage_errors(cli, tmp_path):
    assert "is not a directory" in cli("runs", tmp_path / "nowhere", expect=2).stderr
    assert cli("runs", tmp_path).stdout.strip() == "no runs found"
    assert "usage error" in cli("runs", "diff", tmp_path, expect=2).stderr
    assert "not a tftrain run directory" in cli("runs", "diff", tmp_path, tmp_path, expect=2).stderr
