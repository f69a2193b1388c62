"""The state of a run that a checkpoint holds, built the same way for every use.

Training on one device or under any strategy, and restoring for eval, predict, export and
warm starts, all build a `RunState`: the model, the optimizer and its learning-rate schedule,
the step / epoch / position-in-epoch counters, the EMA shadows, dropout's RNG state, the
best-metric and early-stopping bookkeeping and the gradient accumulator. So there is one
checkpoint layout, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib

from tftrain.lazy import tf
from tftrain.runners import precision
from tftrain.runners.accumulation import GradientAccumulator
from tftrain.runners.optim import WeightAverager, build_optimizer


class RunState:
    """Model, optimizer, counters and bookkeeping of one run, and their checkpoint."""

    def __init__(
        self, config, model, *, steps_per_epoch: int | None, policy="float32", strategy=None
    ):
        train = config.train
        strategy = strategy or tf.distribute.get_strategy()
        self.model = model
        self.precision = policy
        with strategy.scope():
            self.variables = model.network.trainable_variables
            updates_per_epoch = (
                steps_per_epoch // train.grad_accumulation_steps if steps_per_epoch else None
            )
            self.base_optimizer, self.schedule = build_optimizer(train, updates_per_epoch)
            self.optimizer = precision.wrap_optimizer(self.base_optimizer, policy)
            self.optimizer.build(self.variables)
            self.step = counter("step")
            self.epoch = counter("epoch")
            self.step_in_epoch = counter("step_in_epoch")
            # No NaN sentinel for "no best yet": check_numerics would flag it; `has_best` says.
            self.best_value = tf.Variable(0.0, dtype=tf.float64, trainable=False)
            self.has_best = tf.Variable(False, trainable=False)
            self.bad_evaluations = counter("bad_evaluations")
            self.averager = (
                WeightAverager(self.variables, train.ema_decay) if train.ema_decay else None
            )
            self.accumulator = (
                GradientAccumulator(self.variables, train.grad_accumulation_steps)
                if train.grad_accumulation_steps > 1
                else None
            )
        self.checkpoint = tf.train.Checkpoint(
            model=self.model.network,
            optimizer=self.optimizer,
            step=self.step,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            best_value=self.best_value,
            has_best=self.has_best,
            bad_evaluations=self.bad_evaluations,
            lr_multiplier=self.schedule.multiplier,
            ema=self.averager.shadows if self.averager else [],
            # Dropout's seed-generator states are not tracked by the Keras model; saving them
            # is what makes a resumed run draw the same dropout masks.
            rng=[v for v in self.model.network.variables if "seed_generator" in v.path],
            accumulated=(
                [*self.accumulator.sums, self.accumulator.count] if self.accumulator else []
            ),
        )

    @property
    def learning_rate(self) -> float:
        return float(self.schedule(self.base_optimizer.iterations))

    def evaluation_weights(self):
        """Context in which the model holds its evaluation weights (the EMA, if enabled)."""
        return self.averager.swapped_in() if self.averager else contextlib.nullcontext()

    def keep_evaluation_weights(self) -> None:
        """Put the evaluation weights in the model for good (restored models that serve)."""
        if self.averager:
            for shadow, variable in zip(self.averager.shadows, self.variables, strict=True):
                variable.assign(shadow)

    def start_average_from_weights(self) -> None:
        """After a warm start, the moving average starts from the warm weights."""
        if self.averager:
            for shadow, variable in zip(self.averager.shadows, self.variables, strict=True):
                shadow.assign(variable)

    @property
    def best(self) -> float | None:
        return float(self.best_value.numpy()) if bool(self.has_best.numpy()) else None


def counter(name: str):
    return tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
