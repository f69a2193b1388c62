"""`tftrain sweep`: grid and seeded random trials, each an ordinary run trained by its own
process (two at once here), stopped with SIGINT, resumed, and skipped once finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import PROJECT, run_tftrain

QUICK = PROJECT / "configs" / "quickstart.yaml"
STEPS_PER_EPOCH = 41  # quickstart: 1,293 training digits in batches of 32
EPOCHS = 12


def sweep_command(out) -> list[str]:
    return [
        "sweep", QUICK, "--grid", "model.hidden_units=[[8],[32]]", "--parallel", "2",
        "--set", f"train.epochs={EPOCHS}", "--set", "train.early_stopping.patience=0",
        "--out", out,
    ]  # fmt: skip


def steps(run_dir) -> list[int]:
    return [int(p.stem[5:]) for p in (run_dir / "checkpoints").glob("ckpt-*.index")]


def test_grid_in_parallel_stops_on_sigint_resumes_and_skips_finished(tmp_path):
    out = tmp_path / "sweep"
    names = ["000-hidden_units=8", "001-hidden_units=32"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TF_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tftrain", *map(str, sweep_command(out))],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 240
    while not all(max(steps(out / name), default=0) > 0 for name in names):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr
    assert "Run the same `tftrain sweep` command again to resume" in stderr
    stopped = {}
    for name in names:  # both trials were running at once, and each saved where it stopped
        record = json.loads((out / name / "run.json").read_text())
        assert record["status"] == "interrupted", name
        stopped[name] = record["step"]
        assert 0 < stopped[name] < EPOCHS * STEPS_PER_EPOCH
    rows = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]
    assert [(row["name"], row["status"]) for row in rows] == [(n, "stopped") for n in names]

    resumed = run_tftrain(*sweep_command(out))
    assert resumed.returncode == 0, resumed.stderr
    records = {name: json.loads((out / name / "run.json").read_text()) for name in names}
    for name, record in records.items():
        assert record["status"] == "finished" and record["step"] == EPOCHS * STEPS_PER_EPOCH
        log = (out / name / "sweep.log").read_text()
        assert f"resuming from {out / name}/checkpoints/ckpt-{stopped[name]}" in log
    # Two processes at once: the trials' training times overlap.
    first, second = (records[n] for n in names)
    assert (
        first["started_at"] < second["finished_at"] and second["started_at"] < first["finished_at"]
    )

    rows = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]
    assert [row["values"] for row in rows] == [
        {"model.hidden_units": [8]},
        {"model.hidden_units": [32]},
    ]
    for row in rows:
        best = json.loads((out / row["name"] / "best" / "best.json").read_text())
        assert row["status"] == "finished" and row["metric"] == "accuracy"
        assert row["best"] == best["value"]
        assert row["test"] == records[row["name"]]["final"]["test"]
    csv_lines = (out / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith(
        "trial,name,model.hidden_units,status,best accuracy,test accuracy"
    )
    assert len(csv_lines) == 3
    ranking = resumed.stdout.splitlines()
    ranked = sorted(rows, key=lambda row: -row["best"])
    assert [line.split()[1] for line in ranking[1:]] == [row["name"] for row in ranked]
    assert ranking[1].split()[3] == f"{ranked[0]['best']:.4f}"

    before = {name: (out / name / "run.json").stat().st_mtime_ns for name in names}
    again = run_tftrain(*sweep_command(out))
    assert again.returncode == 0, again.stderr
    for name in names:
        assert f"[{name}] finished earlier; skipped" in again.stderr
        assert (out / name / "run.json").stat().st_mtime_ns == before[name]
    assert again.stdout == resumed.stdout


def dry_run(cli, *args) -> list[dict]:
    lines = cli("sweep", QUICK, "--dry-run", *args).stdout.splitlines()
    trials = []
    for line in lines:
        name, *overrides = line.split()
        trials.append({o.split("=", 1)[0]: json.loads(o.split("=", 1)[1]) for o in overrides})
        assert name.startswith(f"{len(trials) - 1:03d}-")
    return trials


def test_random_draws_are_seeded_and_inside_their_ranges(cli):
    space = [
        "--random", "6", "--loguniform", "train.optimizer.learning_rate=1e-4,1e-1",
        "--uniform", "model.dropout=0,0.5", "--choice", "train.batch_size=[16,64]",
    ]  # fmt: skip
    first = dry_run(cli, *space, "--seed", "1")
    assert first == dry_run(cli, *space, "--seed", "1")
    assert first != dry_run(cli, *space, "--seed", "2")
    assert dry_run(cli, *space) == dry_run(cli, *space, "--seed", "42")  # the config's seed
    assert len(first) == 6
    for trial in first:
        assert 1e-4 <= trial["train.optimizer.learning_rate"] <= 1e-1
        assert 0 <= trial["model.dropout"] <= 0.5
        assert trial["train.batch_size"] in (16, 64)
    assert len({t["train.optimizer.learning_rate"] for t in first}) == 6
    # A grid times the random draws.
    combined = dry_run(cli, *space, "--grid", "model.hidden_units=[[8],[16]]")
    assert len(combined) == 12
    assert [t["model.hidden_units"] for t in combined] == [[8]] * 6 + [[16]] * 6


def test_sweep_usage_errors(cli, tmp_path):
    out = ["--out", tmp_path / "s"]
    assert (
        "unknown key 'model.bogus'"
        in cli("sweep", QUICK, "--grid", "model.bogus=[1,2]", *out, expect=2).stderr
    )
    assert (
        "need --random N" in cli("sweep", QUICK, "--uniform", "model.dropout=0,1", expect=2).stderr
    )
    assert (
        "needs 0 < LO < HI"
        in cli(
            "sweep",
            QUICK,
            "--random",
            "2",
            "--loguniform",
            "train.optimizer.learning_rate=0,1",
            expect=2,
        ).stderr
    )
    assert (
        "expected KEY=[v1,v2,...]"
        in cli("sweep", QUICK, "--grid", "model.dropout=0.1", expect=2).stderr
    )
    assert (
        "swept twice"
        in cli("sweep", QUICK, "--grid", "seed=[1,2]", "--grid", "seed=[3]", expect=2).stderr
    )
    assert "nothing to sweep" in cli("sweep", QUICK, expect=2).stderr
    assert not (tmp_path / "s").exists()


def test_early_stop_halves_the_trials_at_each_rung(tmp_path):
    out = tmp_path / "halving"
    command = [
        "sweep", QUICK, "--grid", "train.optimizer.learning_rate=[0.0001,0.0003,0.003,0.01]",
        "--set", "train.epochs=2", "--set", "model.hidden_units=[16]", "--early-stop",
        "--parallel", "2", "--out", out,
    ]  # fmt: skip
    result = run_tftrain(*command)
    assert result.returncode == 0, result.stderr
    assert "round 1 of 2: 4 trial(s) to epoch 1" in result.stderr
    assert "round 2 of 2: 2 trial(s) to epoch 2" in result.stderr
    rows = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]
    at_first_rung = {}
    for row in rows:
        lines = [
            json.loads(x) for x in (out / row["name"] / "metrics.jsonl").read_text().splitlines()
        ]
        at_first_rung[row["name"]] = max(
            x["accuracy"] for x in lines if x.get("split") == "valid" and x["epoch"] <= 1
        )
    better_half = sorted(at_first_rung, key=lambda name: -at_first_rung[name])[:2]
    for row in rows:
        record = json.loads((out / row["name"] / "run.json").read_text())
        promoted = row["name"] in better_half
        assert row["status"] == ("finished" if promoted else "pruned"), row
        assert record["epoch"] == (2 if promoted else 1)
    ranking = [line.split()[1:3] for line in result.stdout.splitlines()[1:]]
    assert [status for _, status in ranking] == ["finished", "finished", "pruned", "pruned"]
    assert {name for name, _ in ranking[:2]} == set(better_half)
    again = run_tftrain(*command)  # resumed: the same promotions, nothing trained again
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout
    assert again.stderr.count("finished earlier; skipped") == 6
