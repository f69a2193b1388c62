"""The NaN/Inf policy: what happens after a step whose loss or gradients are not finite.

The compiled step never applies a non-finite update (so the weights in memory stay good); it
counts such steps in variables. At each host synchronisation the loop asks this guard what to
do: `stop` ends the run naming the step, `skip_batch` carries on (stopping after too many in
a row), `rollback` restores the last good checkpoint with a lower learning rate.
"""

from __future__ import annotations

from tftrain.errors import TrainingError
from tftrain.lazy import tf


class RollbackRequested(Exception):
    """Raised inside an epoch to make `fit` restore the last good checkpoint."""

    def __init__(self, bad_step: int):
        super().__init__(bad_step)
        self.bad_step = bad_step


class NonFiniteGuard:
    """Counts non-finite steps in the graph; applies `train.on_nan` on the host."""

    def __init__(self, train):
        self.train = train
        self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps")
        self.in_a_row = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_in_a_row")
        self.most_in_a_row = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.first_bad_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.seen = 0
        self.rollbacks = 0

    def record(self, finite, step) -> None:
        """In the compiled loop, after each step (`step` already counts this batch). Written
        without Python branches, so the loop needs no autograph."""
        bad = tf.logical_not(finite)
        self.skipped.assign_add(tf.cast(bad, tf.int64))
        self.in_a_row.assign(tf.where(bad, self.in_a_row + 1, tf.constant(0, tf.int64)))
        self.most_in_a_row.assign(tf.maximum(self.most_in_a_row, self.in_a_row))
        first = bad & (self.first_bad_step < 0)
        self.first_bad_step.assign(tf.where(first, tf.cast(step, tf.int64), self.first_bad_step))

    def reset(self) -> None:
        self.in_a_row.assign(0)
        self.most_in_a_row.assign(0)
        self.first_bad_step.assign(-1)
        self.seen = int(self.skipped.numpy())

    def check(self, *, epoch: int, last_checkpoint: str | None, say) -> None:
        """On the host: act on the non-finite steps since the last check."""
        total = int(self.skipped.numpy())
        if total == self.seen:
            return
        bad_step = int(self.first_bad_step.numpy())
        policy = self.train.on_nan
        if policy == "stop":
            kept = (
                f"the last good checkpoint is {last_checkpoint}"
                if last_checkpoint
                else "no checkpoint had been saved"
            )
            raise TrainingError(
                f"loss became NaN or Inf at step {bad_step} (epoch {epoch + 1}); training "
                f"stopped (train.on_nan: stop) and {kept}. Try a lower learning rate, "
                f"train.clip_grad_norm, or train.on_nan: skip_batch / rollback."
            )
        if policy == "rollback":
            raise RollbackRequested(bad_step)
        worst = int(self.most_in_a_row.numpy())
        if worst >= self.train.max_consecutive_skips:
            raise TrainingError(
                f"{worst} steps in a row had a NaN or Inf loss (up to step "
                f"{bad_step + worst - 1}); stopped after train.max_consecutive_skips="
                f"{self.train.max_consecutive_skips}. The last good checkpoint is "
                f"{last_checkpoint}."
            )
        say(
            f"warning: skipped {total - self.seen} batch(es) with a NaN or Inf loss, first at "
            f"step {bad_step} ({total} skipped in this run)"
        )
        self.seen = total
        self.first_bad_step.assign(-1)
        self.most_in_a_row.assign(self.in_a_row)


def numerics_culprit(message: str) -> str:
    """The op a check_numerics error names, e.g. "GatherV2" from ".../CheckNumericsV2"."""
    import re

    found = re.search(r"Detected at node (\S+)", message)
    if not found:
        return message.splitlines()[0]
    return found.group(1).removesuffix("/CheckNumericsV2").rstrip(":")
