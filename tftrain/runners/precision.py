"""Mixed precision: the Keras dtype policy, loss scaling for float16, float32 outputs."""

from __future__ import annotations

from tftrain.lazy import keras, tf


def set_policy(train) -> str:
    """Set Keras' global dtype policy from `train.mixed_precision`; returns its name.

    `auto` picks float16 where a GPU is visible and bfloat16 on CPUs (which have no fast
    float16 kernels). Variables stay float32 either way.
    """
    if not train.mixed_precision:
        name = "float32"
    else:
        dtype = train.mixed_precision_dtype
        if dtype == "auto":
            dtype = "float16" if tf.config.list_physical_devices("GPU") else "bfloat16"
        name = f"mixed_{dtype}"
    keras.mixed_precision.set_global_policy(name)  # global: reset on every Trainer
    return name


def wrap_optimizer(optimizer, policy: str):
    """float16 needs dynamic loss scaling so small gradients do not underflow to zero."""
    if policy == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def as_float32(outputs):
    """Model outputs in float32 so losses and metrics are computed at full precision."""

    def cast(tensor):
        if hasattr(tensor, "dtype") and tensor.dtype in (tf.float16, tf.bfloat16):
            return tf.cast(tensor, tf.float32)
        return tensor

    return tf.nest.map_structure(cast, outputs)
