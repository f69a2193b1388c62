"""Gradient accumulation: N micro-batches make one optimizer update.

The update applies the mean of the N micro-batch gradients, which for equal micro-batches is
the gradient of the N-times-larger batch, so results match within float tolerance.
"""

from __future__ import annotations

from tftrain.lazy import tf


class GradientAccumulator:
    """Sums gradients in variables and says when N of them are in."""

    def __init__(self, variables, steps: int):
        self.steps = steps
        self.sums = [
            tf.Variable(tf.zeros_like(v), trainable=False, name=f"accumulated_{i}")
            for i, v in enumerate(variables)
        ]
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="accumulated_count")

    def add(self, gradients) -> None:
        for total, gradient in zip(self.sums, gradients, strict=True):
            total.assign_add(tf.convert_to_tensor(gradient))
        self.count.assign_add(1)

    def ready(self):
        return self.count >= self.steps

    def mean(self) -> list:
        return [total / tf.cast(self.steps, total.dtype) for total in self.sums]

    def reset(self) -> None:
        for total in self.sums:
            total.assign(tf.zeros_like(total))
        self.count.assign(0)
