"""The shared loop end to end: learning, checkpoints and resume, summaries, EMA, NaN stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tests.conftest import PROJECT, read_scalars
from tftrain.config import config_from_dict
from tftrain.runners.trainer import Trainer

DIGITS = {
    "name": "digits",
    "model": {"type": "softmax", "hidden_units": [32]},
    "data": {"type": "digits"},
    "train": {
        "batch_size": 32,
        "epochs": 4,
        "steps_per_loop": 5,
        "log_every_steps": 10,
        "optimizer": {"name": "adam", "learning_rate": 0.005},
    },
}


def merged(base: dict, **sections) -> dict:
    tree = json.loads(json.dumps(base))
    for key, value in sections.items():
        if isinstance(value, dict):
            tree.setdefault(key, {}).update(value)
        else:
            tree[key] = value
    return tree


def weights(trainer) -> list[np.ndarray]:
    return [v.numpy() for v in trainer.model.network.trainable_variables]


def test_linear_reaches_the_closed_form_optimum(cli, write_config, tmp_path):
    path = write_config(
        {
            "model": {"type": "linear"},
            "data": {"type": "synthetic_linear", "num_examples": 500, "noise": 0.05},
            "train": {
                "batch_size": 25,
                "epochs": 30,
                "steps_per_loop": 4,
                "optimizer": {"name": "sgd", "learning_rate": 0.5},
                "schedule": {"type": "exponential", "decay_rate": 0.85, "decay_epochs": 1},
            },
        }
    )
    run = tmp_path / "run"
    cli("fit", path, "--run-dir", run, "--quiet")
    metrics = json.loads(cli("eval", run, "--json").stdout)
    assert metrics["optimal_mse"] > 0
    assert metrics["mse"] <= 1.01 * metrics["optimal_mse"], metrics


def test_softmax_learns_digits_and_writes_the_run_directory(cli, write_config, tmp_path):
    path = write_config(DIGITS)
    run = tmp_path / "run"
    result = cli("fit", path, "--run-dir", run, "--quiet")
    assert "test: loss" in result.stdout
    test = json.loads(cli("eval", run, "--json", "--split", "test").stdout)
    assert test["accuracy"] >= 0.93
    assert set(test) >= {"loss", "accuracy", "step", "split"}
    steps_per_epoch = json.loads((run / "run.json").read_text())["steps_per_epoch"]
    assert test["step"] == 4 * steps_per_epoch
    # Resolved config, spec, checkpoints (latest N and best), metrics, run record.
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["batch_size"] == 32 and saved["checkpoint"]["max_to_keep"] == 3
    assert len(list((run / "checkpoints").glob("ckpt-*.index"))) == 3
    assert len(list((run / "best").glob("ckpt-*.index"))) == 1
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["config_hash"]
    assert record["versions"]["tensorflow"].startswith("2.21")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [line for line in lines if line.get("split") == "valid"]
    assert len(valid) == 4 and valid[-1]["accuracy"] > valid[0]["accuracy"] - 0.02


def test_event_files_hold_loss_metrics_and_learning_rate(cli, write_config, tmp_path):
    path = write_config(merged(DIGITS, train={"epochs": 2}))
    run = tmp_path / "run"
    cli("fit", path, "--run-dir", run, "--quiet")
    train = read_scalars(run / "logs" / "train")
    valid = read_scalars(run / "logs" / "valid")
    assert {"loss", "accuracy", "learning_rate", "examples_per_second"} <= set(train)
    assert {"loss", "accuracy"} <= set(valid)
    assert len(valid["loss"]) == 2
    losses = [value for _, value in train["loss"]]
    assert losses[-1] < losses[0]
    assert all(value == pytest.approx(0.005) for _, value in train["learning_rate"])
    recorded = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last_valid = [r for r in recorded if r.get("split") == "valid"][-1]
    assert valid["loss"][-1][1] == pytest.approx(last_valid["loss"], rel=1e-5)


def test_fit_again_resumes_and_extends_to_the_new_total(tmp_path):
    run = tmp_path / "run"
    first = Trainer(config_from_dict(merged(DIGITS, train={"epochs": 1})), run, quiet=True)
    first.fit()
    steps_per_epoch = first.setup.steps_per_epoch
    assert int(first.step.numpy()) == steps_per_epoch
    saved = weights(first)
    second = Trainer(config_from_dict(merged(DIGITS, train={"epochs": 2})), run, quiet=True)
    second.keeper.restore_latest()
    for a, b in zip(saved, weights(second), strict=True):
        np.testing.assert_array_equal(a, b)
    second.fit()
    assert int(second.step.numpy()) == 2 * steps_per_epoch  # continued, not restarted
    assert int(second.state.epoch.numpy()) == 2


def test_mid_epoch_checkpoint_resume_matches_an_uninterrupted_run(tmp_path):
    """Stopping at step 7 and resuming gives exactly the weights of one straight run."""
    tree = merged(DIGITS, train={"epochs": 2, "steps_per_loop": 1}, checkpoint={"every_steps": 7})
    straight = Trainer(config_from_dict(tree), tmp_path / "a", quiet=True)
    straight.fit()
    stopped = Trainer(
        config_from_dict(merged(tree, train={"max_steps": 7})), tmp_path / "b", quiet=True
    )
    stopped.fit()
    assert int(stopped.state.step_in_epoch.numpy()) == 7
    resumed = Trainer(config_from_dict(tree), tmp_path / "b", quiet=True)
    resumed.fit()
    assert int(resumed.step.numpy()) == int(straight.step.numpy())
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_loop_does_not_change_the_result(tmp_path):
    tree = merged(DIGITS, train={"epochs": 1, "shuffle": False})
    results = []
    for steps in (1, 7):
        trainer = Trainer(
            config_from_dict(merged(tree, train={"steps_per_loop": steps})),
            tmp_path / str(steps),
            quiet=True,
        )
        trainer.fit()
        results.append(weights(trainer))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ema_weights_are_used_for_evaluation_and_restored_after(tmp_path):
    tree = merged(DIGITS, train={"epochs": 1, "ema_decay": 0.9})
    trainer = Trainer(config_from_dict(tree), tmp_path / "run", quiet=True)
    trainer.fit()
    raw = weights(trainer)
    shadows = [s.numpy() for s in trainer.state.averager.shadows]
    assert any(not np.allclose(a, b) for a, b in zip(raw, shadows, strict=True))
    with trainer.state.evaluation_weights():
        for v, s in zip(weights(trainer), shadows, strict=True):
            np.testing.assert_array_equal(v, s)
    for a, b in zip(raw, weights(trainer), strict=True):
        np.testing.assert_array_equal(a, b)


def test_schedules_give_the_tutorial_learning_rates(tmp_path):
    tree = merged(
        DIGITS,
        train={
            "optimizer": {"name": "sgd", "learning_rate": 0.8},
            "schedule": {"type": "exponential", "decay_rate": 0.99, "staircase": True},
        },
    )
    trainer = Trainer(config_from_dict(tree), tmp_path / "run", quiet=True)
    n = trainer.setup.steps_per_epoch
    assert float(trainer.state.schedule(n - 1)) == pytest.approx(0.8)
    assert float(trainer.state.schedule(n)) == pytest.approx(0.8 * 0.99)
    assert float(trainer.state.schedule(10 * n + 3)) == pytest.approx(0.8 * 0.99**10, rel=1e-5)
    piecewise = merged(
        DIGITS,
        train={
            "schedule": {"type": "piecewise", "boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}
        },
    )
    trainer = Trainer(config_from_dict(piecewise), tmp_path / "run2", quiet=True)
    assert [float(trainer.state.schedule(s)) for s in (0, 9, 10, 19, 20, 500)] == pytest.approx(
        [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    )


def test_early_stopping_ends_training(cli, write_config, tmp_path):
    # A learning rate of zero never improves the validation loss after the first evaluation.
    tree = merged(
        DIGITS,
        train={
            "epochs": 50,
            "optimizer": {"name": "sgd", "learning_rate": 1e-12},
            "early_stopping": {"patience": 2, "metric": "loss"},
        },
    )
    run = tmp_path / "run"
    result = cli("fit", write_config(tree), "--run-dir", run)
    assert "early stopping" in result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["stopped_early"] is True and record["epoch"] == 3


def test_nan_loss_stops_with_exit_1_and_keeps_the_last_good_checkpoint(cli, write_config, tmp_path):
    tree = merged(
        DIGITS,
        train={"epochs": 30, "optimizer": {"name": "sgd", "learning_rate": 1e12}},
        model={"type": "softmax", "hidden_units": [32], "activation": "linear"},
        checkpoint={"every_steps": 1},
    )
    run = tmp_path / "run"
    result = cli("fit", write_config(tree), "--run-dir", run, "--quiet", expect=1)
    assert "loss became NaN or Inf at step" in result.stderr
    assert "last good checkpoint is" in result.stderr
    bad_step = int(result.stderr.split("at step ")[1].split()[0])
    kept = sorted(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("ckpt-*.index"))
    assert kept and kept[-1] == bad_step - 1
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    # The kept checkpoint holds finite weights.
    metrics = json.loads(cli("eval", run, "--json").stdout)
    assert metrics["step"] == bad_step - 1


def test_ctrl_c_saves_and_the_same_command_resumes(write_config, tmp_path):
    tree = merged(
        DIGITS,
        train={"epochs": 30, "steps_per_loop": 1, "log_every_steps": 1000},
    )
    path = write_config(tree)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "tftrain", "fit", str(path), "--run-dir", str(run)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=PROJECT)
    deadline = time.time() + 120

    def trained() -> bool:  # the first epoch's checkpoint (ckpt-0 is the starting point)
        return any(p.name != "ckpt-0.index" for p in (run / "checkpoints").glob("ckpt-*.index"))

    while not trained() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr
    assert "Run the same `tftrain fit` command again to resume" in stderr
    interrupted_at = int(stderr.split("interrupted at step ")[1].split(";")[0])
    assert interrupted_at > 0
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["step"] == interrupted_at
    # The same command again continues from that step instead of step 0, and finishes.
    resumed = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {run}/checkpoints/ckpt-{interrupted_at}" in resumed.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["step"] == 30 * record["steps_per_epoch"]
