"""The `device:` section -> environment and `tf.config` calls, applied once before TF uses a device.

ConfigProto options moved to `tf.config` in TF2 and most of them only work before TensorFlow
initialises its devices; this module is the one place that knows that. It also accepts the
old ConfigProto spellings (`gpu_options.allow_growth`, ...), builds the `tf.distribute`
strategy a config asks for, and writes `TF_CONFIG` for multi-worker runs.

Every `tf.config` call goes through a backend object (`TFConfigBackend` by default), so the
option mapping is tested on machines without a GPU by passing a backend that records calls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tftrain.errors import ConfigError

GPU_OPTIONS = ("allow_growth", "per_process_gpu_memory_fraction", "memory_limit_mb")
# ConfigProto spelling (under `device:`) -> tftrain key. Nested mappings and dotted keys both work.
ALIASES = {
    "gpu_options.allow_growth": "allow_growth",
    "gpu_options.per_process_gpu_memory_fraction": "per_process_gpu_memory_fraction",
    "gpu_options.visible_device_list": "visible_devices",
    "device_count.CPU": "logical_cpus",
    "device_count.GPU": "visible_devices",  # only 0 is meaningful: hide every GPU
}
_applied: dict | None = None
_reported: set[str] = set()
_strategies: dict = {}


# --- ConfigProto aliases ------------------------------------------------------------------


def _flatten(raw: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and str(key) in ("gpu_options", "device_count"):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def normalize_aliases(tree: dict, sources) -> dict:
    """Rewrite ConfigProto spellings in `tree["device"]` to tftrain keys, keeping sources."""
    device = tree.get("device")
    if not isinstance(device, dict):
        return tree
    flat = _flatten(device)
    if not any("." in str(key) for key in flat):
        return tree
    normal = {}
    mapping = getattr(sources, "mapping", {})
    for key, value in flat.items():
        if "." not in key:
            continue
        if key not in ALIASES:
            known = ", ".join(ALIASES)
            raise ConfigError(
                f"config error: unknown ConfigProto option 'device.{key}' "
                f"(accepted: {known}) ({sources.where(f'device.{key}') or 'device section'})"
            )
        name = ALIASES[key]
        if key == "device_count.GPU":
            if value != 0:
                raise ConfigError(
                    f"config error: 'device.device_count.GPU' only supports 0 (hide all GPUs); "
                    f"to choose GPUs use device.visible_devices, e.g. '0,1' "
                    f"({sources.where('device.' + key)})"
                )
            value = ""
        elif key == "gpu_options.visible_device_list" and value is not None:
            value = str(value)
        if name in flat and flat[name] != value or name in normal and normal[name] != value:
            raise ConfigError(
                f"config error: 'device.{key}' and 'device.{name}' disagree "
                f"({flat.get(name, normal.get(name))!r} vs {value!r}); keep one of them "
                f"({sources.where('device.' + key)})"
            )
        normal[name] = value
        where = mapping.get(f"device.{key}")
        if where:
            mapping.setdefault(f"device.{name}", where)
    normal.update({key: value for key, value in flat.items() if "." not in key})
    return {**tree, "device": normal}


# --- the tf.config seam --------------------------------------------------------------------


class TFConfigBackend:
    """The real `tf.config` calls `apply` makes (a recorder with the same methods tests it)."""

    def __init__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide C++ start-up chatter
        import tensorflow as tf

        self.tf = tf

    def physical_devices(self, kind: str) -> list:
        return self.tf.config.list_physical_devices(kind)

    def threads(self) -> tuple[int, int]:
        threading = self.tf.config.threading
        return (
            threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads(),
        )

    def set_intra_op_threads(self, count: int) -> None:
        self.tf.config.threading.set_intra_op_parallelism_threads(count)

    def set_inter_op_threads(self, count: int) -> None:
        self.tf.config.threading.set_inter_op_parallelism_threads(count)

    def set_soft_placement(self, enabled: bool) -> None:
        self.tf.config.set_soft_device_placement(enabled)

    def set_log_placement(self, enabled: bool) -> None:
        self.tf.debugging.set_log_device_placement(enabled)

    def set_memory_growth(self, device, enabled: bool) -> None:
        self.tf.config.experimental.set_memory_growth(device, enabled)

    def logical_configuration(self, device) -> list:
        return self.tf.config.get_logical_device_configuration(device) or []

    def split_device(self, device, memory_limits: list) -> None:
        """One logical device per entry; an entry is a memory limit in MB (GPU) or None."""
        config = self.tf.config.LogicalDeviceConfiguration
        self.tf.config.set_logical_device_configuration(
            device, [config(memory_limit=limit) for limit in memory_limits]
        )

    def gpu_total_memory_mb(self, index: int) -> int | None:
        """Total memory of the index-th visible GPU, from nvidia-smi (TF does not report it)."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        physical = visible.split(",")[index].strip() if visible else str(index)
        if not shutil.which("nvidia-smi"):
            return None
        try:
            output = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
                + ["-i", physical],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout
            return int(float(output.split()[0]))
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None


# --- applying the device section -----------------------------------------------------------


def _settings(device) -> dict:
    import dataclasses

    return {f.name: getattr(device, f.name) for f in dataclasses.fields(device)}


def _too_late(option: str, error: Exception) -> ConfigError:
    return ConfigError(
        f"config error: TensorFlow has already initialised its devices in this process, so "
        f"'device.{option}' can no longer change ({error}). Apply the device section before "
        f"any TensorFlow computation: call tftrain.devices.apply(config.device) first thing, "
        f"or run the work in a fresh process (e.g. through the tftrain CLI)."
    )


def _report_once(text: str, report) -> bool:
    if text in _reported:
        return False
    _reported.add(text)
    report(text)
    return True


def apply(device, *, report=None, backend=None) -> list[str]:
    """Apply the device options; returns the notes reported (e.g. GPU options not applicable).

    Safe to call again in the same process: options already in force are left alone, and an
    option that TensorFlow can no longer change raises a ConfigError saying what to do.
    """
    global _applied
    report = report or (lambda text: print(text, file=sys.stderr))
    settings = _settings(device)
    real = backend is None
    if real and _applied == settings:
        return []
    if device.visible_devices is not None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if real and "tensorflow" in sys.modules and visible != device.visible_devices:
            raise ConfigError(
                f"config error: 'device.visible_devices' ({device.visible_devices!r}) must be set "
                f"before TensorFlow is imported, but this process already imported it with "
                f"CUDA_VISIBLE_DEVICES={visible!r}. Set CUDA_VISIBLE_DEVICES in the environment, "
                f"or use `tftrain fit --gpus`, which sets it before TensorFlow starts."
            )
        os.environ["CUDA_VISIBLE_DEVICES"] = device.visible_devices
    backend = backend or TFConfigBackend()
    notes = []
    intra, inter = backend.threads()
    option = "intra_op_parallelism_threads"
    try:
        if device.intra_op_parallelism_threads and device.intra_op_parallelism_threads != intra:
            backend.set_intra_op_threads(device.intra_op_parallelism_threads)
        option = "inter_op_parallelism_threads"
        if device.inter_op_parallelism_threads and device.inter_op_parallelism_threads != inter:
            backend.set_inter_op_threads(device.inter_op_parallelism_threads)
        backend.set_soft_placement(device.allow_soft_placement)
        backend.set_log_placement(device.log_device_placement)
        option = "logical_cpus"
        if device.logical_cpus:
            cpus = backend.physical_devices("CPU")
            if len(backend.logical_configuration(cpus[0]) or [None]) != device.logical_cpus:
                backend.split_device(cpus[0], [None] * device.logical_cpus)
        gpus = backend.physical_devices("GPU")
        for index, gpu in enumerate(gpus):
            option = "allow_growth"
            if device.allow_growth:
                backend.set_memory_growth(gpu, True)
            option = "memory_limit_mb"
            limit = memory_limit_mb(device, index, backend, report)
            if limit:
                backend.split_device(gpu, [limit])
    except RuntimeError as error:
        raise _too_late(option, error) from None
    if not gpus:
        asked = [name for name in GPU_OPTIONS if getattr(device, name) not in (None, False)]
        if asked:
            note = f"note: no GPU is visible; device options {', '.join(asked)} do not apply"
            if _report_once(note, report) or not real:
                notes.append(note)
    if real:
        _applied = settings
    return notes


def memory_limit_mb(device, index: int, backend, report=None) -> int | None:
    """`memory_limit_mb`, or `per_process_gpu_memory_fraction` of the GPU's total memory."""
    if device.memory_limit_mb:
        return device.memory_limit_mb
    if device.per_process_gpu_memory_fraction:
        total = backend.gpu_total_memory_mb(index)
        if total:
            return int(total * device.per_process_gpu_memory_fraction)
        if report:
            _report_once(
                f"note: cannot read GPU {index}'s total memory (no nvidia-smi), so "
                f"per_process_gpu_memory_fraction is not applied; set memory_limit_mb instead",
                report,
            )
    return None


# --- strategies ----------------------------------------------------------------------------


def replica_devices(device) -> list[str]:
    """The local devices `mirrored` replicates over: the GPUs, else the logical CPUs."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def strategy(device):
    """The tf.distribute strategy the config asks for (one per process and kind); None or
    `strategy: default` give TensorFlow's default strategy, whose scope costs nothing."""
    import tensorflow as tf

    kind = device.strategy if device is not None else "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind in _strategies:
        return _strategies[kind]
    if kind == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        made = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    elif kind == "mirrored":
        made = tf.distribute.MirroredStrategy(replica_devices(device))
    elif kind == "multi_worker":
        read_tf_config(kind)  # a clear error instead of a silent single-worker run
        made = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING
            )
        )
    else:
        raise ConfigError(
            "config error: strategy 'parameter_server' is run by its own coordinator loop "
            "(tftrain.runners.parameter_server), not by the Trainer"
        )
    _strategies[kind] = made
    return made


def read_tf_config(kind: str = "multi_worker") -> dict:
    """TF_CONFIG as a dict; a clear error when a multi-process strategy has none."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError(
            f"config error: strategy '{kind}' needs TF_CONFIG (the cluster and this process's "
            f"task). Start the workers with `tftrain launch --workers N CONFIG`, or pass "
            f"`tftrain fit --workers host:port,host:port --worker-index I`."
        )
    try:
        value = json.loads(text)
        value["cluster"], value["task"]["type"], value["task"]["index"]  # noqa: B018
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"config error: TF_CONFIG is not valid JSON with 'cluster' and 'task': {text!r}"
        ) from None
    return value


def tf_config_for(workers: list[str], index: int) -> str:
    """TF_CONFIG for worker `index` of a MultiWorkerMirroredStrategy cluster."""
    if not 0 <= index < len(workers):
        raise ConfigError(
            f"usage error: --worker-index {index} is out of range for {len(workers)} workers"
        )
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def task_role() -> tuple[str, int, bool]:
    """(task type, index, is chief) from TF_CONFIG; a process without it is the chief."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return "chief", 0, True
    value = json.loads(text)
    task = value.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    cluster = value.get("cluster", {})
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return kind, index, chief


def replica_count(device) -> int:
    """How many replicas the config's strategy gives, without starting any server."""
    kind = device.strategy
    if kind in ("default", "one_device"):
        return 1
    if kind == "mirrored":
        return len(replica_devices(device))
    cluster = read_tf_config(kind)["cluster"]
    if kind == "multi_worker":
        return len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return len(cluster.get("worker", []))


# --- `tftrain devices` ------------------------------------------------------------------------


def describe(device) -> list[str]:
    """What TensorFlow sees and what the device section puts in force, as report lines."""
    import tensorflow as tf

    lines = []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    build = dict(tf.sysconfig.get_build_info())
    cuda = build.get("cuda_version") or "none (CPU-only build)"
    cudnn = build.get("cudnn_version") or "none"
    lines.append(f"TensorFlow {tf.__version__}  CUDA {cuda}  cuDNN {cudnn}")
    lines.append(f"built with CUDA: {tf.test.is_built_with_cuda()}")
    if visible is None:
        lines.append("CUDA_VISIBLE_DEVICES: not set (every GPU is visible)")
    else:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        shown = ", ".join(f"GPU:{i} = physical GPU {p}" for i, p in enumerate(ids)) or "no GPU"
        lines.append(f"CUDA_VISIBLE_DEVICES={visible!r}: TensorFlow renumbers: {shown}")
    physical = tf.config.list_physical_devices()
    lines.append("physical devices:")
    lines += [f"  {d.name} ({d.device_type})" for d in physical]
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        lines.append("  no GPU: TensorFlow sees no GPU, so GPU options do not apply")
    for index, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        growth = tf.config.experimental.get_memory_growth(gpu)
        limits = [c.memory_limit for c in tf.config.get_logical_device_configuration(gpu) or []]
        limit = f"{limits} MB" if limits else "none (all memory)"
        name = details.get("device_name", "?")
        lines.append(f"  GPU:{index} {name}: memory growth {growth}, memory limit {limit}")
    threading = tf.config.threading
    intra = threading.get_intra_op_parallelism_threads()
    inter = threading.get_inter_op_parallelism_threads()
    lines.append(
        f"threads: intra_op_parallelism_threads={intra}  inter_op_parallelism_threads={inter}"
        f"  (0 = TensorFlow chooses; {os.cpu_count()} CPU cores)"
    )
    lines.append(
        f"placement: allow_soft_placement={tf.config.get_soft_device_placement()}  "
        f"log_device_placement={device.log_device_placement}"
    )
    logical = tf.config.list_logical_devices()
    lines.append("logical devices:")
    lines += [f"  {d.name}" for d in logical]
    try:
        replicas = replica_count(device)
    except ConfigError as error:
        replicas = f"unknown ({str(error).removeprefix('config error: ').split('.')[0]})"
    lines.append(f"strategy: {device.strategy}  replicas: {replicas}")
    return lines


# --- command-line options ---------------------------------------------------------------------


def command_line_overrides(overrides, *, gpus=None, workers=None, worker_index=None) -> list:
    """`--gpus` and `--workers/--worker-index` as environment settings plus config overrides.

    CUDA_VISIBLE_DEVICES and TF_CONFIG are set here, before TensorFlow is imported.
    """
    overrides = list(overrides)
    if gpus is not None:
        gpus = gpus.replace(" ", "")
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
        overrides.append(f"device.visible_devices='{gpus}'")  # --gpus wins over the config
    if (workers is None) != (worker_index is None):
        raise ConfigError("usage error: --workers and --worker-index go together")
    if workers is not None:
        addresses = [w.strip() for w in workers.split(",") if w.strip()]
        bad = [a for a in addresses if not a.rpartition(":")[2].isdigit()]
        if bad or not addresses:
            raise ConfigError(
                f"usage error: --workers expects host:port,host:port, got {workers!r}"
            )
        os.environ["TF_CONFIG"] = tf_config_for(addresses, worker_index)
        overrides.append("device.strategy=multi_worker")
    return overrides
