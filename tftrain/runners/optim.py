"""Optimizer, learning-rate schedule and the moving average of weights, built from config."""

from __future__ import annotations

import contextlib

from tftrain.errors import ConfigError
from tftrain.lazy import keras, tf


def decay_interval(schedule, steps_per_epoch: int | None) -> int:
    """Steps between decays: `decay_steps`, or `decay_epochs` x steps per epoch (default 1)."""
    if schedule.decay_steps:
        return schedule.decay_steps
    if not steps_per_epoch:
        raise ConfigError(
            "config error: 'train.schedule.decay_steps' is required when the number of steps "
            "per epoch is unknown"
        )
    return max(1, round((schedule.decay_epochs or 1.0) * steps_per_epoch))


def build_schedule(train, steps_per_epoch: int | None):
    """A Keras LearningRateSchedule for `train.schedule`, times a backoff multiplier."""
    schedule = train.schedule
    base = train.optimizer.learning_rate
    interval = decay_interval(schedule, steps_per_epoch) if schedule.type == "exponential" else 1
    start = schedule.decay_start_epoch * (steps_per_epoch or 0)
    total = linear_steps(train, steps_per_epoch) if schedule.type == "linear" else 1

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        """constant | exponential (optionally staircase, after a start epoch) | piecewise."""

        def __init__(self):
            # Lowered by NaN rollbacks; checkpointed with the optimizer's step.
            self.multiplier = tf.Variable(1.0, trainable=False, name="lr_multiplier")

        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            if schedule.type == "exponential":
                exponent = tf.maximum(step - start, 0.0) / interval
                if schedule.staircase:
                    exponent = tf.floor(exponent)
                rate = base * tf.pow(schedule.decay_rate, exponent)
            elif schedule.type == "linear":
                progress = tf.minimum(step / total, 1.0)
                rate = base * (1.0 - (1.0 - schedule.final_fraction) * progress)
            elif schedule.type == "piecewise":
                rate = tf.constant(schedule.values[-1], tf.float32)
                for boundary, value in reversed(
                    list(zip(schedule.boundaries, schedule.values, strict=False))
                ):
                    rate = tf.where(step < boundary, tf.constant(value, tf.float32), rate)
            else:
                rate = tf.constant(base, tf.float32)
            return rate * self.multiplier

        def get_config(self):
            return {}

    return Schedule()


def linear_steps(train, steps_per_epoch: int | None) -> int:
    """Steps the linear decay spans: decay_steps, else max_steps, else epochs x epoch steps."""
    if train.schedule.decay_steps:
        return train.schedule.decay_steps
    if train.max_steps:
        return train.max_steps
    if not steps_per_epoch:
        raise ConfigError(
            "config error: 'train.schedule.type: linear' needs 'train.schedule.decay_steps' "
            "or 'train.max_steps' when the number of steps per epoch is unknown"
        )
    return max(1, train.epochs * steps_per_epoch)


def build_optimizer(train, steps_per_epoch: int | None):
    """The configured Keras optimizer with its learning-rate schedule."""
    options = train.optimizer
    schedule = build_schedule(train, steps_per_epoch)
    name = options.name
    if name == "sgd":
        optimizer = keras.optimizers.SGD(schedule)
    elif name == "momentum":
        optimizer = keras.optimizers.SGD(
            schedule, momentum=options.momentum, nesterov=options.nesterov
        )
    elif name == "adam":
        optimizer = keras.optimizers.Adam(
            schedule, beta_1=options.beta_1, beta_2=options.beta_2, epsilon=options.epsilon
        )
    elif name == "adagrad":
        optimizer = keras.optimizers.Adagrad(
            schedule,
            initial_accumulator_value=options.initial_accumulator_value,
            epsilon=options.epsilon,
        )
    else:
        optimizer = keras.optimizers.RMSprop(
            schedule, rho=options.rho, momentum=options.momentum, epsilon=options.epsilon
        )
    return optimizer, schedule


class WeightAverager:
    """Exponential moving average of weights, swapped in for evaluation and export.

    Like the tutorials' `ExponentialMovingAverage(decay, num_updates=step)`, the effective
    decay is min(decay, (1 + step) / (10 + step)) so early averages are not dragged to zero.
    """

    def __init__(self, variables, decay: float):
        self.decay = decay
        self.variables = list(variables)
        self.shadows = [
            tf.Variable(v, trainable=False, name=f"ema_{i}") for i, v in enumerate(self.variables)
        ]

    def update(self, step) -> None:
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for shadow, variable in zip(self.shadows, self.variables, strict=True):
            shadow.assign_sub((1.0 - decay) * (shadow - variable))

    @contextlib.contextmanager
    def swapped_in(self):
        """Within the block the model holds the averaged weights."""
        backup = [v.numpy() for v in self.variables]
        for shadow, variable in zip(self.shadows, self.variables, strict=True):
            variable.assign(shadow)
        try:
            yield
        finally:
            for value, variable in zip(backup, self.variables, strict=True):
                variable.assign(value)
