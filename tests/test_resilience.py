"""Exact resume after SIGKILL, NaN policies, warm starts, locks, accumulation, precision."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import PROJECT, read_scalars
from tftrain.config import config_from_dict
from tftrain.runners.trainer import Trainer

DROPOUT_MLP = {
    "name": "exact",
    "seed": 7,
    "model": {"type": "softmax", "hidden_units": [32], "dropout": 0.3},
    "data": {"type": "digits"},
    "train": {
        "batch_size": 32,
        "epochs": 3,
        "steps_per_loop": 1,
        "deterministic": True,
        "log_every_steps": 1000,
        "optimizer": {"name": "adam", "learning_rate": 0.003},
        "ema_decay": 0.9,
    },
    "checkpoint": {"every_steps": 3},
}


def fit_command(config, run):
    return [sys.executable, "-m", "tftrain", "fit", str(config), "--run-dir", str(run), "--quiet"]


def final_weights(run) -> dict:
    """Every model, optimizer, EMA and RNG value of the run's latest checkpoint."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(run / "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return {
        name: reader.get_tensor(name)
        for name, _ in tf.train.list_variables(path)
        if name.startswith(("model/", "optimizer/", "ema/", "rng/", "step/"))
    }


def test_sigkill_at_a_random_step_then_resume_gives_identical_weights(write_config, tmp_path):
    config = write_config(DROPOUT_MLP)
    straight = subprocess.run(
        fit_command(config, tmp_path / "straight"), cwd=PROJECT, capture_output=True, timeout=300
    )
    assert straight.returncode == 0, straight.stderr
    total = json.loads((tmp_path / "straight" / "run.json").read_text())["step"]

    run = tmp_path / "killed"
    process = subprocess.Popen(fit_command(config, run), cwd=PROJECT, stderr=subprocess.PIPE)
    target = random.Random().randint(4, total - 10)  # an arbitrary mid-run step
    deadline = time.time() + 200
    while time.time() < deadline:
        steps = [int(p.stem[5:]) for p in (run / "checkpoints").glob("ckpt-*.index")]
        if steps and max(steps) >= target:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL
    resumed = subprocess.run(
        fit_command(config, run), cwd=PROJECT, capture_output=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    expected, got = final_weights(tmp_path / "straight"), final_weights(run)
    assert set(expected) == set(got) and any(k.startswith("rng/") for k in got)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


INF_ROWS = 120


def write_features_with_inf(tmp_path, poisoned_rows=(49,)):
    """An .npz of 120 rows with `inf` in the given rows. Not a CSV: the CSV reader refuses
    non-finite values while reading, and these tests need the loss itself to become Inf."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(INF_ROWS, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    for row in poisoned_rows:
        x[row] = [np.inf, 0, 0]
        y[row] = 1
    path = tmp_path / "poisoned.npz"
    np.savez(path, x=x, y=y)
    return path


def poisoned_config(tmp_path, on_nan: str, poisoned_rows=(49,), **train) -> dict:
    return {
        "model": {"type": "softmax"},
        "data": {
            "type": "npz",
            "path": str(write_features_with_inf(tmp_path, poisoned_rows)),
            "test_fraction": 0.0,
            "valid_fraction": 0.0,
        },
        "train": {
            "batch_size": 10,
            "epochs": 3,
            "on_nan": on_nan,
            "steps_per_loop": 4,
            "log_every_steps": 5,
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            **train,
        },
        "eval": {"final_splits": ["train"]},
    }


def test_on_nan_stop_names_the_step_and_keeps_the_last_good_checkpoint(cli, write_config, tmp_path):
    run = tmp_path / "run"
    result = cli("fit", write_config(poisoned_config(tmp_path, "stop")), "--run-dir", run, expect=1)
    assert "loss became NaN or Inf at step" in result.stderr
    bad_step = int(result.stderr.split("at step ")[1].split()[0])
    assert 1 <= bad_step <= 12  # the poisoned row sits in one batch of the first epoch
    kept = [int(p.stem[5:]) for p in (run / "checkpoints").glob("ckpt-*.index")]
    assert kept == [0]  # only the last good one; nothing was saved after the NaN
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_on_nan_skip_batch_drops_each_poisoned_update_and_counts_them(cli, write_config, tmp_path):
    run = tmp_path / "run"
    result = cli("fit", write_config(poisoned_config(tmp_path, "skip_batch")), "--run-dir", run)
    assert "skipped 1 batch(es) with a NaN or Inf loss" in result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["skipped_steps"] == 3  # the poisoned batch once per epoch
    assert record["step"] == 3 * 12  # skipped batches still count as steps (data position)
    weights = final_weights(run)
    assert all(np.all(np.isfinite(v)) for v in weights.values())


def test_on_nan_skip_batch_stops_after_too_many_in_a_row(cli, write_config, tmp_path):
    tree = poisoned_config(
        tmp_path, "skip_batch", range(30), max_consecutive_skips=2, shuffle=False
    )
    tree["data"]["holdout"] = "last"  # keep the file's order: rows 0-29 fill batches 1-3
    result = cli("fit", write_config(tree), "--run-dir", tmp_path / "run", expect=1)
    assert "steps in a row had a NaN or Inf loss" in result.stderr


def test_on_nan_rollback_restores_and_lowers_the_learning_rate(cli, write_config, tmp_path):
    tree = {
        "model": {"type": "linear"},
        "data": {"type": "synthetic_linear", "num_examples": 400, "weights": [3.0, -2.0]},
        "train": {
            "batch_size": 20,
            "epochs": 6,
            "on_nan": "rollback",
            "nan_lr_backoff": 0.01,
            "log_every_steps": 2,
            "optimizer": {"name": "sgd", "learning_rate": 60.0},  # diverges to Inf
        },
    }
    run = tmp_path / "run"
    result = cli("fit", write_config(tree), "--run-dir", run)
    assert "rolled back to" in result.stderr and "learning rate x0.01" in result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["rollbacks"] == 1
    assert record["final"]["test"]["mse"] < 0.01  # trained fine at 0.6 after the rollback
    rates = [value for _, value in read_scalars(run / "logs" / "train")["learning_rate"]]
    assert rates[-1] == pytest.approx(0.6, rel=1e-5)


def test_check_numerics_reports_the_op(cli, write_config, tmp_path):
    tree = poisoned_config(tmp_path, "stop", check_numerics=True)
    result = cli("fit", write_config(tree), "--run-dir", tmp_path / "run", expect=1)
    assert "check_numerics found a NaN or Inf" in result.stderr
    # The first op with a non-finite output: the gather that reads the poisoned row.
    assert "first op with a NaN or Inf output: GatherV2" in result.stderr


DIGITS_MLP = {
    "model": {"type": "softmax", "hidden_units": [32]},
    "data": {"type": "digits"},
    "train": {
        "batch_size": 32,
        "epochs": 2,
        "steps_per_loop": 5,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
    },
}


def test_warm_start_restores_shared_variables_and_reports_the_rest(cli, write_config, tmp_path):
    source = tmp_path / "source"
    cli("fit", write_config(DIGITS_MLP, name="a.yaml"), "--run-dir", source, "--quiet")
    target = {
        **DIGITS_MLP,
        "model": {"type": "softmax", "hidden_units": [32, 16]},
        "train": {
            **DIGITS_MLP["train"],
            "epochs": 1,
            "optimizer": {"name": "sgd", "learning_rate": 1e-12},  # keep the warm values
            "init_from": {"checkpoint": str(source), "exclude": ["logits/*"]},
        },
    }
    run = tmp_path / "target"
    result = cli("fit", write_config(target, name="b.yaml"), "--run-dir", run)
    assert "restored hidden_0/kernel, hidden_0/bias" in result.stderr
    assert "fresh: hidden_1/kernel, hidden_1/bias, logits/kernel, logits/bias" in result.stderr
    report = json.loads((run / "run.json").read_text())["warm_start"]
    assert report["restored"] == ["hidden_0/kernel", "hidden_0/bias"]
    from tftrain.runners.restore import restore_run

    warm = {v.path.split("/", 1)[1]: v.numpy() for v in restore_run(run).model.network.variables}
    cold = {v.path.split("/", 1)[1]: v.numpy() for v in restore_run(source).model.network.variables}
    np.testing.assert_allclose(warm["hidden_0/kernel"], cold["hidden_0/kernel"], atol=1e-6)
    # Without the exclusion the output layer's shapes clash: both shapes are named.
    clash = {**target, "train": {**target["train"], "init_from": {"checkpoint": str(source)}}}
    result = cli("fit", write_config(clash, name="c.yaml"), "--run-dir", tmp_path / "c", expect=2)
    assert "logits/kernel: checkpoint (32, 10) vs model (16, 10)" in result.stderr


def test_a_second_fit_on_a_live_run_is_refused_and_a_dead_lock_is_not(write_config, tmp_path):
    tree = {**DIGITS_MLP, "train": {**DIGITS_MLP["train"], "epochs": 500, "steps_per_loop": 1}}
    config = write_config(tree)
    run = tmp_path / "run"
    first = subprocess.Popen(fit_command(config, run), cwd=PROJECT, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "ckpt-0.index").exists() and time.time() < deadline:
        time.sleep(0.1)
    second = subprocess.run(fit_command(config, run), cwd=PROJECT, capture_output=True, text=True)
    assert second.returncode == 1
    assert f"{run} is being trained by pid {first.pid}" in second.stderr
    first.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock
    first.wait(timeout=300)
    third = subprocess.run(
        [*fit_command(config, run), "--set", "train.epochs=1"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert third.returncode == 0, third.stderr


def test_changed_config_warns_and_shape_changes_are_refused(cli, write_config, tmp_path):
    run = tmp_path / "run"
    path = write_config(DIGITS_MLP)
    cli("fit", path, "--run-dir", run, "--quiet")
    result = cli("fit", path, "--run-dir", run, "--set", "train.epochs=3", "--set", "seed=9")
    assert "config differs from the one this run started with: seed, train.epochs" in result.stderr
    result = cli(
        "fit", path, "--run-dir", run, "--set", "model.hidden_units=[8]", "--quiet", expect=2
    )
    assert "cannot resume" in result.stderr and "changed the model's shape" in result.stderr


def test_extra_epochs_extends_a_finished_run(cli, write_config, tmp_path):
    run = tmp_path / "run"
    path = write_config(DIGITS_MLP)
    cli("fit", path, "--run-dir", run, "--quiet")
    before = json.loads((run / "run.json").read_text())
    cli("fit", path, "--run-dir", run, "--quiet", "--extra-epochs", "2")
    after = json.loads((run / "run.json").read_text())
    assert after["epoch"] == before["epoch"] + 2
    assert after["step"] == before["step"] + 2 * before["steps_per_epoch"]


def weights_after(tree, run_dir) -> list[np.ndarray]:
    trainer = Trainer(config_from_dict(tree), run_dir, quiet=True)
    trainer.fit()
    return [v.numpy() for v in trainer.state.variables]


def test_gradient_accumulation_equals_one_larger_batch(tmp_path):
    base = {
        "model": {"type": "softmax", "hidden_units": [16]},
        "data": {"type": "digits"},
        "train": {"shuffle": False, "optimizer": {"name": "sgd", "learning_rate": 0.2}},
        "summaries": {"enabled": False},
    }
    large = {**base, "train": {**base["train"], "batch_size": 32, "max_steps": 12}}
    small = {
        **base,
        "train": {**base["train"], "batch_size": 8, "grad_accumulation_steps": 4, "max_steps": 48},
    }
    for a, b in zip(
        weights_after(large, tmp_path / "l"), weights_after(small, tmp_path / "s"), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_jit_compile_gives_the_same_training(tmp_path):
    base = {**DIGITS_MLP, "train": {**DIGITS_MLP["train"], "epochs": 1, "shuffle": False}}
    jit = {**base, "device": {"jit_compile": True}}
    for a, b in zip(
        weights_after(base, tmp_path / "a"), weights_after(jit, tmp_path / "b"), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_mixed_precision_bfloat16_trains_with_float32_weights(tmp_path):
    tree = {**DIGITS_MLP, "train": {**DIGITS_MLP["train"], "epochs": 3, "mixed_precision": True}}
    trainer = Trainer(config_from_dict(tree), tmp_path / "run", quiet=True)
    results = trainer.fit()
    assert trainer.state.precision == "mixed_bfloat16"
    assert all(v.dtype == "float32" for v in trainer.state.variables)
    assert results["test"]["accuracy"] > 0.85
    float32 = Trainer(config_from_dict(DIGITS_MLP), tmp_path / "f32", quiet=True)
    assert float32.state.precision == "float32"  # the global policy is reset for the next run


def test_mixed_float16_uses_loss_scaling_and_trains(tmp_path):
    tree = {
        **DIGITS_MLP,
        "train": {
            **DIGITS_MLP["train"],
            "epochs": 3,
            "mixed_precision": True,
            "mixed_precision_dtype": "float16",
        },
    }
    trainer = Trainer(config_from_dict(tree), tmp_path / "run", quiet=True)
    results = trainer.fit()
    assert trainer.state.precision == "mixed_float16"
    assert type(trainer.state.optimizer).__name__ == "LossScaleOptimizer"
    assert all(v.dtype == "float32" for v in trainer.state.variables)
    assert results["test"]["accuracy"] > 0.85
