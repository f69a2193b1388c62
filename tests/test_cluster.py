"""Clusters a scheduler starts: Slurm's environment read into TF_CONFIG (node lists with bracket
ranges, tasks per node like `2(x3),1`), tested with two real `tftrain fit --cluster slurm`
processes over localhost; only the chief writes the run directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import PROJECT
from tftrain.cluster import expand_nodelist, expand_tasks_per_node, join_cluster, slurm_tf_config
from tftrain.errors import ConfigError


def test_node_lists_and_tasks_per_node_expand_in_slurms_order():
    assert expand_nodelist("node[01-03,7],gpu5") == ["node01", "node02", "node03", "node7", "gpu5"]
    assert expand_nodelist("r[1-2]-n[09-10]") == ["r1-n09", "r1-n10", "r2-n09", "r2-n10"]
    assert expand_nodelist("c10,c2") == ["c10", "c2"]  # not sorted: ranks follow this order
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    for bad in ("node[1-", "n[a-b]", ""):
        with pytest.raises(ConfigError, match="node list"):
            expand_nodelist(bad)
    with pytest.raises(ConfigError, match="tasks per node"):
        expand_tasks_per_node("2(x)")


def test_slurm_environment_gives_every_task_its_worker_address():
    environ = {
        "SLURM_PROCID": "3",
        "SLURM_JOB_NODELIST": "ignored[1-9]",
        "SLURM_STEP_NODELIST": "node[1-2],gpu7",
        "SLURM_STEP_TASKS_PER_NODE": "2(x2),1",
        "SLURM_NTASKS": "5",
    }
    config = json.loads(slurm_tf_config(environ, 9000))
    assert config["cluster"]["worker"] == [
        "node1:9000", "node1:9001", "node2:9000", "node2:9001", "gpu7:9000",
    ]  # fmt: skip
    assert config["task"] == {"type": "worker", "index": 3}
    job_level = {"SLURM_PROCID": "0", "SLURM_JOB_NODELIST": "a", "SLURM_TASKS_PER_NODE": "1",
                 "SLURM_NTASKS": "1"}  # fmt: skip
    assert json.loads(slurm_tf_config(job_level, 8888))["cluster"]["worker"] == ["a:8888"]
    with pytest.raises(ConfigError, match="does not add up"):
        slurm_tf_config({**environ, "SLURM_NTASKS": "4"}, 9000)
    with pytest.raises(ConfigError, match="SLURM_PROCID"):
        slurm_tf_config({k: v for k, v in environ.items() if k != "SLURM_PROCID"}, 9000)


def test_join_cluster_sets_tf_config_and_the_strategy(write_config):
    from tftrain.config import load_config

    path = write_config({"model": {"type": "softmax"}, "data": {"type": "digits"}})
    slurm = {"SLURM_PROCID": "1", "SLURM_STEP_NODELIST": "h", "SLURM_STEP_TASKS_PER_NODE": "2",
             "SLURM_NTASKS": "2"}  # fmt: skip
    config = join_cluster(load_config(path, ["device.cluster=slurm"]), slurm)
    assert config.device.strategy == "multi_worker"
    assert json.loads(slurm["TF_CONFIG"])["cluster"]["worker"] == ["h:8888", "h:8889"]
    plain = load_config(path)
    assert join_cluster(plain, {}) is plain  # no cluster: unchanged
    tf_config = {"TF_CONFIG": slurm["TF_CONFIG"]}
    assert join_cluster(plain, tf_config).device.strategy == "multi_worker"  # auto
    with pytest.raises(ConfigError, match="needs the TF_CONFIG"):
        join_cluster(load_config(path, ["device.cluster=tf_config"]), {})
    with pytest.raises(ConfigError, match="not mirrored"):
        join_cluster(load_config(path, ["device.cluster=slurm", "device.strategy=mirrored"]), slurm)


def consecutive_free_ports() -> int:
    """A port P with P and P+1 free on localhost (Slurm tasks on one node count up)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports")


def files_under(path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_two_slurm_tasks_train_together_and_only_the_chief_writes(write_config, tmp_path):
    config = write_config(
        {
            "name": "slurm",
            "seed": 5,
            "model": {"type": "softmax", "hidden_units": [16]},
            "data": {"type": "digits"},
            "train": {"batch_size": 64, "epochs": 1, "steps_per_loop": 4},
            "eval": {"final_splits": ["valid"]},
        }
    )
    run = tmp_path / "run"
    port = consecutive_free_ports()
    processes, homes = [], []
    for rank in range(2):
        home = tmp_path / f"task{rank}"  # each task's working and temporary directory
        (home / "tmp").mkdir(parents=True)
        homes.append(home)
        env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TMPDIR": str(home / "tmp"),
            "SLURM_PROCID": str(rank),
            "SLURM_STEP_NODELIST": "localhost",
            "SLURM_STEP_TASKS_PER_NODE": "2",
            "SLURM_NTASKS": "2",
        }
        env.pop("TF_CONFIG", None)
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tftrain",
                    "fit",
                    config,
                    "--cluster",
                    "slurm",
                    "--set",
                    f"device.cluster_port={port}",
                    "--run-dir",
                    run,
                ],
                cwd=home,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    deadline = time.time() + 300
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=max(deadline - time.time(), 1))
        outputs.append(output)
        assert process.returncode == 0, output[-3000:]
    assert "worker 1: not the chief" in outputs[1]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["strategy"] == "multi_worker"
    assert record["step"] == 21  # 1,293 examples in global batches of 64: both tasks' steps
    assert (run / ".lock").read_text().startswith(f"pid {processes[0].pid} ")
    # The worker wrote nothing: not in its working directory, and its temporary run is gone.
    assert files_under(homes[1]) == {"tmp"}
    # One writer per file: one event file per TensorBoard folder, one run's checkpoints.
    for folder in ("train", "valid"):
        assert len(list((run / "logs" / folder).glob("events.out.tfevents.*"))) == 1
    assert len(list((run / "logs").glob("events.out.tfevents.*"))) == 1  # HParams: chief only
    assert not [name for name in files_under(run) if "temp" in name or name.endswith(".tmp")]
