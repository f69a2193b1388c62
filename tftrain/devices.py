"""The `device:` section -> environment and `tf.config` calls, applied once before TF uses a device.

ConfigProto options moved to `tf.config` in TF2 and most of them only work before TensorFlow
initialises its devices; this module is the one place that knows that.
"""

from __future__ import annotations

import os
import sys

from tftrain.errors import ConfigError

_applied: dict | None = None
GPU_OPTIONS = ("allow_growth", "per_process_gpu_memory_fraction", "memory_limit_mb")


def _settings(device) -> dict:
    return {
        "visible_devices": device.visible_devices,
        "allow_growth": device.allow_growth,
        "per_process_gpu_memory_fraction": device.per_process_gpu_memory_fraction,
        "memory_limit_mb": device.memory_limit_mb,
        "allow_soft_placement": device.allow_soft_placement,
        "log_device_placement": device.log_device_placement,
        "intra_op_parallelism_threads": device.intra_op_parallelism_threads,
        "inter_op_parallelism_threads": device.inter_op_parallelism_threads,
    }


def apply(device, *, report=None) -> list[str]:
    """Apply the device options; returns the notes reported (e.g. GPU options not applicable)."""
    global _applied
    report = report or (lambda text: print(text, file=sys.stderr))
    settings = _settings(device)
    if _applied == settings:
        return []
    if device.visible_devices is not None:
        if "tensorflow" in sys.modules and _applied is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible != device.visible_devices:
                raise ConfigError(
                    "config error: 'device.visible_devices' must be set before TensorFlow is "
                    "imported; set CUDA_VISIBLE_DEVICES in the environment instead, or apply "
                    "the config before importing tensorflow"
                )
        os.environ["CUDA_VISIBLE_DEVICES"] = device.visible_devices
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide C++ start-up chatter
    import tensorflow as tf

    notes = []
    try:
        if device.intra_op_parallelism_threads:
            tf.config.threading.set_intra_op_parallelism_threads(
                device.intra_op_parallelism_threads
            )
        if device.inter_op_parallelism_threads:
            tf.config.threading.set_inter_op_parallelism_threads(
                device.inter_op_parallelism_threads
            )
        tf.config.set_soft_device_placement(device.allow_soft_placement)
        tf.debugging.set_log_device_placement(device.log_device_placement)
        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            if device.allow_growth:
                tf.config.experimental.set_memory_growth(gpu, True)
            limit = memory_limit_mb(device, gpu)
            if limit:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)]
                )
    except RuntimeError as error:
        raise ConfigError(
            f"config error: TensorFlow has already initialised its devices, so the 'device:' "
            f"options cannot be applied ({error}). Apply them before any TensorFlow "
            f"computation, e.g. run through the tftrain CLI or call tftrain.devices.apply first."
        ) from None
    if not gpus:
        asked = [name for name in GPU_OPTIONS if getattr(device, name) not in (None, False)]
        if asked:
            notes.append(f"note: no GPU is visible; device options {asked} do not apply")
    for note in notes:
        report(note)
    _applied = settings
    return notes


def memory_limit_mb(device, gpu) -> int | None:
    """A fraction of the GPU's total memory, or an absolute limit, in MB."""
    if device.memory_limit_mb:
        return device.memory_limit_mb
    if device.per_process_gpu_memory_fraction:
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(gpu)
        total = details.get("memory_limit") or details.get("device_memory_size")
        if total:
            return int(total / 2**20 * device.per_process_gpu_memory_fraction)
    return None


def strategy(device):
    """The tf.distribute strategy the config asks for."""
    import tensorflow as tf

    if device.strategy == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()
