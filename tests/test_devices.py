"""The device section: ConfigProto aliases, the option -> tf.config mapping, `tftrain devices`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from tests.conftest import PROJECT, run_tftrain
from tftrain import devices
from tftrain.config import DeviceConfig, config_from_dict, load_config
from tftrain.errors import ConfigError

BASE = {"model": {"type": "softmax"}, "data": {"type": "digits"}}


class RecordingBackend:
    """The seam `devices.apply` calls instead of tf.config: fake GPUs, every call recorded."""

    def __init__(self, gpus=2, total_mb=8000, threads=(0, 0)):
        self.gpus = [SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(gpus)]
        self.cpus = [SimpleNamespace(name="/physical_device:CPU:0")]
        self.total_mb = total_mb
        self.current_threads = threads
        self.calls = []

    def physical_devices(self, kind):
        return {"GPU": self.gpus, "CPU": self.cpus}[kind]

    def threads(self):
        return self.current_threads

    def set_intra_op_threads(self, count):
        self.calls.append(("intra_op", count))

    def set_inter_op_threads(self, count):
        self.calls.append(("inter_op", count))

    def set_soft_placement(self, enabled):
        self.calls.append(("soft_placement", enabled))

    def set_log_placement(self, enabled):
        self.calls.append(("log_placement", enabled))

    def set_memory_growth(self, device, enabled):
        self.calls.append(("memory_growth", device.name, enabled))

    def logical_configuration(self, device):
        return []

    def split_device(self, device, memory_limits):
        self.calls.append(("split", device.name, list(memory_limits)))

    def gpu_total_memory_mb(self, index):
        return self.total_mb


def test_configproto_spellings_are_aliases(write_config):
    path = write_config(
        textwrap.dedent(
            """\
            model: {type: softmax}
            data: {type: digits}
            device:
              gpu_options:
                per_process_gpu_memory_fraction: 0.4
                visible_device_list: "1,0"
              intra_op_parallelism_threads: 2
              inter_op_parallelism_threads: 1
              allow_soft_placement: false
              device_count: {CPU: 3}
            """
        )
    )
    device = load_config(path).device
    assert device.per_process_gpu_memory_fraction == 0.4
    assert device.visible_devices == "1,0"
    assert device.logical_cpus == 3
    assert (device.intra_op_parallelism_threads, device.inter_op_parallelism_threads) == (2, 1)
    assert device.allow_soft_placement is False
    # Flat dotted spellings and --set on the nested key work the same way.
    flat = config_from_dict({**BASE, "device": {"gpu_options.allow_growth": True}}).device
    assert flat.allow_growth is True
    overridden = load_config(path, ["device.gpu_options.visible_device_list=0"]).device
    assert overridden.visible_devices == "0"
    hidden = config_from_dict({**BASE, "device": {"device_count": {"GPU": 0}}}).device
    assert hidden.visible_devices == ""


def test_alias_errors_name_the_key_and_line(write_config):
    path = write_config(
        "model: {type: softmax}\ndata: {type: digits}\ndevice:\n  gpu_options:\n"
        "    allow_grwth: true\n"
    )
    with pytest.raises(ConfigError, match=r"device\.gpu_options\.allow_grwth.*line 5"):
        load_config(path)
    conflict = {"gpu_options": {"allow_growth": True}, "allow_growth": False}
    with pytest.raises(ConfigError, match="disagree"):
        config_from_dict({**BASE, "device": conflict})
    both = {"allow_growth": True, "memory_limit_mb": 1000}
    with pytest.raises(ConfigError, match="cannot combine memory growth"):
        config_from_dict({**BASE, "device": both})
    with pytest.raises(ConfigError, match="one of 'default'.*did you mean 'mirrored'"):
        config_from_dict({**BASE, "device": {"strategy": "mirored"}})


def test_option_mapping_reaches_tf_config_calls(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    backend = RecordingBackend(gpus=2, total_mb=8000, threads=(0, 0))
    device = DeviceConfig(
        visible_devices="1,3",
        per_process_gpu_memory_fraction=0.25,
        allow_soft_placement=False,
        log_device_placement=True,
        intra_op_parallelism_threads=4,
        inter_op_parallelism_threads=2,
        logical_cpus=2,
    )
    notes = devices.apply(device, backend=backend, report=lambda text: None)
    assert notes == []
    assert backend.calls == [
        ("intra_op", 4),
        ("inter_op", 2),
        ("soft_placement", False),
        ("log_placement", True),
        ("split", "/physical_device:CPU:0", [None, None]),
        ("split", "/physical_device:GPU:0", [2000]),  # 0.25 of 8000 MB
        ("split", "/physical_device:GPU:1", [2000]),
    ]
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,3"

    growth = RecordingBackend(gpus=1, threads=(4, 2))
    devices.apply(
        DeviceConfig(allow_growth=True, intra_op_parallelism_threads=4),
        backend=growth,
        report=lambda text: None,
    )
    # Thread counts already in force are not set again (TF refuses changes after start-up).
    assert ("intra_op", 4) not in growth.calls
    assert ("memory_growth", "/physical_device:GPU:0", True) in growth.calls
    limit = RecordingBackend(gpus=1)
    devices.apply(DeviceConfig(memory_limit_mb=1500), backend=limit, report=lambda text: None)
    assert ("split", "/physical_device:GPU:0", [1500]) in limit.calls


def test_gpu_options_without_a_gpu_are_reported_once(monkeypatch):
    monkeypatch.setattr(devices, "_reported", set())
    said = []
    device = DeviceConfig(allow_growth=True)
    for _ in range(3):
        devices.apply(device, backend=RecordingBackend(gpus=0), report=said.append)
    assert said == ["note: no GPU is visible; device options allow_growth do not apply"]


def test_too_late_errors_say_what_to_do():
    """In a real process that already started TensorFlow, changes fail with a clear error."""
    script = textwrap.dedent(
        """
        import json
        import tensorflow as tf
        from tftrain import devices
        from tftrain.config import DeviceConfig
        from tftrain.errors import ConfigError
        tf.constant(1.0) + 1.0  # initialises the devices
        errors = {}
        for name, device in [
            ("threads", DeviceConfig(intra_op_parallelism_threads=3)),
            ("logical_cpus", DeviceConfig(logical_cpus=2)),
            ("visible", DeviceConfig(visible_devices="0")),
        ]:
            try:
                devices.apply(device, report=lambda text: None)
                errors[name] = None
            except ConfigError as error:
                errors[name] = str(error)
        print(json.dumps(errors))
        """
    )
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
        timeout=600,
    )
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    assert "already initialised its devices" in errors["threads"]
    assert "intra_op_parallelism_threads" in errors["threads"]
    assert "fresh process" in errors["threads"]
    assert "device.logical_cpus" in errors["logical_cpus"]
    assert "before TensorFlow is imported" in errors["visible"]
    assert "--gpus" in errors["visible"]


def test_devices_command_on_a_cpu_only_machine(write_config):
    path = write_config(
        {
            **BASE,
            "device": {
                "intra_op_parallelism_threads": 2,
                "inter_op_parallelism_threads": 3,
                "logical_cpus": 2,
                "strategy": "mirrored",
                "gpu_options": {"allow_growth": True},
            },
        }
    )
    result = run_tftrain("devices", path, "--gpus", "0", timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "no GPU: TensorFlow sees no GPU" in out
    assert "intra_op_parallelism_threads=2  inter_op_parallelism_threads=3" in out
    assert "CUDA_VISIBLE_DEVICES='0'" in out and "GPU:0 = physical GPU 0" in out
    assert "/device:CPU:1" in out  # the second logical CPU
    assert "strategy: mirrored  replicas: 2" in out
    assert out.count("device options allow_growth do not apply") == 1
    build = next(line for line in out.splitlines() if line.startswith("TensorFlow "))
    assert "TensorFlow 2." in build and "CUDA" in build and "cuDNN" in build


def test_worker_options_write_tf_config(monkeypatch, cli, write_config):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    overrides = devices.command_line_overrides(
        ["train.epochs=1"], workers="127.0.0.1:2222, 127.0.0.1:2223", worker_index=1
    )
    assert overrides == ["train.epochs=1", "device.strategy=multi_worker"]
    tf_config = json.loads(__import__("os").environ["TF_CONFIG"])
    assert tf_config == {
        "cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
        "task": {"type": "worker", "index": 1},
    }
    assert devices.task_role() == ("worker", 1, False)
    path = write_config(BASE)
    result = cli("fit", path, "--workers", "a:1,b:2", "--worker-index", "2", expect=2)
    assert "out of range for 2 workers" in result.stderr
    result = cli("fit", path, "--workers", "nonsense", "--worker-index", "0", expect=2)
    assert "host:port" in result.stderr
    result = cli("fit", path, "--worker-index", "0", expect=2)
    assert "go together" in result.stderr
