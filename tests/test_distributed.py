"""Strategies end to end, each in fresh processes (devices must be configured before TF starts).

mirrored over 2 logical CPUs and `tftrain launch --workers 2` (MultiWorkerMirroredStrategy,
with a worker killed mid-run and the cluster relaunched) must give the single-device result
for the same global batch; parameter_server trains with 1 ps + 2 workers + a coordinator.
The launch test covers both the plain launch and the kill/resume case in one run to keep the
number of TensorFlow processes (about 5 s of CPU each to start) down.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import PROJECT

CONFIG = {
    "name": "dist",
    "seed": 3,
    "model": {"type": "softmax", "hidden_units": [16]},
    "data": {"type": "digits"},
    # 1,294 training examples: 20 full batches of 64 and a partial one of 14, so the
    # replicas also see an uneven split of the last batch.
    "train": {
        "batch_size": 64,
        "epochs": 2,
        "steps_per_loop": 4,
        "log_every_steps": 10,
        "clip_grad_norm": 5.0,
        "l2": 0.0001,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
    },
    "eval": {"final_splits": ["valid"]},
}
STEPS = 2 * 21


def tftrain(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("TF_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tftrain", *map(str, args)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def finish(process: subprocess.Popen, timeout=240) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def weights(run_dir) -> dict:
    """Every trained variable and the step counter of the run's latest checkpoint."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    )
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.startswith(("optimizer/_trainable_variables/", "step/"))
    }


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) >= 5
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=2e-5, err_msg=key)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "dist.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def single_run(config_file, tmp_path_factory):
    """The single-device reference run (started here, awaited by the tests that use it)."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    process = tftrain("fit", config_file, "--run-dir", run_dir, "--quiet")
    return process, run_dir


def reference(single_run) -> dict:
    process, run_dir = single_run
    if process.returncode is None:
        finish(process)
    return weights(run_dir)


def test_mirrored_over_two_logical_cpus_matches_one_device(config_file, single_run, tmp_path):
    run_dir = tmp_path / "mirrored"
    process = tftrain(
        "fit", config_file, "--run-dir", run_dir,
        "--set", "device.strategy=mirrored", "--set", "device.logical_cpus=2",
        "--set", "device.jit_compile=true",
    )  # fmt: skip
    output = finish(process)
    # jit_compile is not applied to the replicated step, and says so rather than being ignored.
    assert "device.jit_compile is not applied under device.strategy: mirrored" in output
    run = json.loads((run_dir / "run.json").read_text())
    assert run["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    mirrored = weights(run_dir)
    assert int(mirrored["step/.ATTRIBUTES/VARIABLE_VALUE"]) == STEPS
    assert_same_weights(mirrored, reference(single_run))


def test_launch_two_workers_killed_resumed_matches_one_process(config_file, single_run, tmp_path):
    """launch --workers 2; worker 1 is killed mid-run, the launch stops the chief and fails;
    launched again, both workers resume from the chief's checkpoint, finish, and end with the
    single-process weights. Only the chief ever wrote checkpoints, summaries and metrics."""
    run_dir = tmp_path / "two"
    every = ["--set", "checkpoint.every_steps=10"]
    launcher = tftrain("launch", "--workers", 2, config_file, "--run-dir", run_dir, *every)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
    reader.start()

    def saved_steps() -> list[int]:
        return [int(p.name[5:-6]) for p in (run_dir / "checkpoints").glob("ckpt-*.index")]

    deadline = time.time() + 180
    while not any(step >= 10 for step in saved_steps()):  # the chief saved mid-run
        assert launcher.poll() is None and time.time() < deadline, "".join(lines)[-3000:]
        time.sleep(0.05)
    pid = int(re.search(r"\[launch\] worker 1: pid (\d+)", "".join(lines)).group(1))
    os.kill(pid, signal.SIGKILL)
    launcher.wait(timeout=300)
    reader.join(timeout=10)
    first = "".join(lines)
    assert launcher.returncode == 1, first[-3000:]
    assert f"worker 1 (pid {pid}) exited with code -9; stopped the other tasks" in first
    # The chief stops on the lost peer (failed) or on the launcher's SIGTERM (interrupted),
    # whichever comes first; either way run.json does not stay "running".
    assert json.loads((run_dir / "run.json").read_text())["status"] in ("failed", "interrupted")

    output = finish(tftrain("launch", "--workers", 2, config_file, "--run-dir", run_dir, *every))
    resumed = re.findall(r"\[worker (\d)\] resuming from (\S+): step (\d+)", output)
    assert sorted(worker for worker, _, _ in resumed) == ["0", "1"]
    (_, path0, step0), (_, path1, step1) = resumed
    assert path0 == path1 and step0 == step1 and 10 <= int(step0) < STEPS
    assert Path(path0).parent == run_dir / "checkpoints"
    assert output.count("] run directory: ") == 2  # both workers finished
    assert "[launch] all 2 training task(s) finished" in output
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["step"] == STEPS

    # Every event file was written by a worker-0 process (the pid is in the file name), and
    # worker 1's temporary checkpoint directory is gone.
    chiefs = set(re.findall(r"\[launch\] worker 0: pid (\d+)", first + output))
    events = list((run_dir / "logs").glob("*/events.out.tfevents.*"))
    writers = {re.search(r"\.(\d+)\.\d+\.v2$", e.name).group(1) for e in events}
    assert events and writers <= chiefs
    temporary = re.findall(r"writing checkpoints to (\S+) \(removed at exit\)", output)
    assert temporary and not any(Path(t).exists() for t in temporary)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "final" for r in records) == 1
    assert_same_weights(weights(run_dir), reference(single_run))


def test_parameter_server_trains_with_one_ps_and_two_workers(config_file, tmp_path):
    run_dir = tmp_path / "ps"
    output = finish(
        tftrain(
            "launch",
            "--workers",
            2,
            "--ps",
            1,
            config_file,
            "--run-dir",
            run_dir,
            "--set",
            "device.strategy=parameter_server",
        )
    )
    for task in ("chief 0", "worker 0", "worker 1", "ps 0"):
        assert f"[launch] {task}: pid" in output
    assert "[worker 1] worker 1: serving for the coordinator" in output
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["step"] == STEPS
    assert run["final"]["valid"]["accuracy"] > 0.6  # chance is 0.1
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("split") == "train"]
    # The same loop as on one device: logs every 10 steps and at each epoch's end.
    assert [r["step"] for r in train] == [10, 20, 21, 30, 40, 42]
    assert train[-1]["loss"] < train[0]["loss"]
    # One checkpoint layout for every strategy: the same keys as a single-device run's.
    single = tmp_path / "single"
    finish(tftrain("fit", config_file, "--run-dir", single, "--set", "train.max_steps=3"))
    assert checkpoint_keys(run_dir) == checkpoint_keys(single)


def checkpoint_keys(run_dir) -> set[str]:
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    return {name for name, _ in tf.train.list_variables(path)}


def test_smoke_runs_the_parameter_server_path_on_an_in_process_cluster(config_file, tmp_path):
    """`fit --smoke` takes the same trainer as `fit`: for parameter_server, the coordinator
    loop against one worker and one ps started inside the process."""
    run_dir = tmp_path / "smoke"
    output = finish(
        tftrain(
            "fit", config_file, "--smoke", "--run-dir", run_dir,
            "--set", "device.strategy=parameter_server",
        )
    )  # fmt: skip
    for stage in (
        "fit ok (3 steps",
        "resume ok (continued from step 3 to 5)",
        "eval ok",
        "export ok",
    ):
        assert f"smoke: {stage}" in output, output[-2000:]
    assert json.loads((run_dir / "run.json").read_text())["strategy"] == "parameter_server"


def test_parameter_server_chief_refuses_settings_it_cannot_honour(config_file, tmp_path):
    """EMA and XLA are named in a config error (exit 2) before any server is contacted."""
    cluster = {
        "cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"], "ps": ["127.0.0.1:3"]},
        "task": {"type": "chief", "index": 0},
    }
    env = {**os.environ, "TF_CONFIG": json.dumps(cluster)}
    result = subprocess.run(
        [sys.executable, "-m", "tftrain", "fit", str(config_file), "--run-dir", str(tmp_path),
         "--set", "device.strategy=parameter_server", "--set", "train.ema_decay=0.9",
         "--set", "device.jit_compile=true"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "train.ema_decay, device.jit_compile not supported" in result.stderr
    assert "Traceback" not in result.stderr
