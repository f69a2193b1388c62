"""Training under a `tf.distribute` strategy: the replicated step, and multi-worker roles.

The replicated step keeps the single-device semantics exactly: each replica's loss is its
loss sum divided by the *global* example count, so the gradients summed across replicas (the
Keras optimizer sums them) equal the gradient of the global batch on one device.

The NaN guard needs care: a synchronisation point (the optimizer's gradient all-reduce)
cannot sit inside a tensor `if` in a replica function ("merge_call called while defining a
new graph"). So one `strategy.run` computes the gradients and an all-reduced finite flag,
and a second `strategy.run`, inside `if finite:` in the cross-replica context, applies them.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from tftrain import devices
from tftrain.lazy import tf
from tftrain.models.base import stacked_sums
from tftrain.runners.checkpoints import CheckpointKeeper
from tftrain.runners.progress import say
from tftrain.runners.rundir import RunDir
from tftrain.runners.summaries import SummaryLog


class ReplicatedStep:
    """The trainer's `_train_step` for strategies; called in the cross-replica context."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.strategy = trainer.strategy

    def __call__(self, features, labels, state):
        trainer = self.trainer
        strategy = self.strategy
        gradients, sums, new_state, finite = strategy.run(
            self._gradients, args=(features, labels, state)
        )
        finite = strategy.experimental_local_results(finite)[0]  # equal on every replica
        if finite:
            strategy.run(self._apply, args=(gradients,))
            if trainer.averager is not None:
                optimizer = getattr(trainer, "base_optimizer", trainer.optimizer)
                trainer.averager.update(optimizer.iterations)
        # The trainer's loop counts the step (applied or skipped) after this returns.
        total = tf.distribute.ReduceOp.SUM
        sums = {name: strategy.reduce(total, value, axis=None) for name, value in sums.items()}
        return sums, new_state, finite

    def _gradients(self, features, labels, state):
        trainer = self.trainer
        train = trainer.config.train
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        total = tf.distribute.ReduceOp.SUM
        with tf.GradientTape() as tape:
            outputs, new_state = trainer.model.forward(features, training=True, state=state)
            metrics = trainer.model.losses_and_metrics(labels, outputs)
            loss_sum, count = metrics["loss"]
            global_count = context.all_reduce(total, tf.cast(count, tf.float32))
            objective = tf.cast(loss_sum, tf.float32) / tf.maximum(global_count, 1.0)
            if train.l2:
                weights = trainer.model.regularized_variables()
                penalty = tf.add_n([tf.nn.l2_loss(w) for w in weights])
                objective += train.l2 * penalty / replicas  # summed over replicas below
        gradients = tape.gradient(objective, trainer.variables)
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(gradients, trainer.variables, strict=True)
        ]
        if train.clip_grad_norm:
            # Clipping needs the global gradient: reduce here, then hand the optimizer a
            # 1/replicas share that its own all-reduce sums back to the clipped gradient.
            gradients = context.all_reduce(total, gradients)
            gradients, norm = tf.clip_by_global_norm(gradients, train.clip_grad_norm)
            gradients = [g / replicas for g in gradients]
        else:
            norm = tf.linalg.global_norm(gradients)
        ok = tf.logical_and(tf.math.is_finite(objective), tf.math.is_finite(norm))
        bad = context.all_reduce(total, 1.0 - tf.cast(ok, tf.float32))
        sums = stacked_sums(metrics)
        return gradients, sums, new_state, tf.equal(bad, 0.0)

    def _apply(self, gradients):
        trainer = self.trainer
        trainer.optimizer.apply_gradients(zip(gradients, trainer.variables, strict=True))


def distribute_epoch(trainer, data, batch_size: int):
    """An epoch's global batches split across replicas, and the per-replica initial state."""
    strategy = trainer.strategy
    distributed = strategy.experimental_distribute_dataset(data)
    if not trainer.model.initial_state(batch_size):
        return distributed, ()
    replicas = strategy.num_replicas_in_sync
    state = strategy.experimental_distribute_values_from_function(
        lambda context: trainer.model.initial_state(batch_size // replicas)
    )
    return distributed, state


class WorkerCheckpointKeeper(CheckpointKeeper):
    """A non-chief worker's keeper: saves into its temporary directory (every worker must call
    save under MultiWorkerMirroredStrategy) and resumes from the chief's checkpoints."""

    def __init__(self, checkpoint, *, shared_dir: Path, **kwargs):
        super().__init__(checkpoint, **kwargs)
        self.shared = tf.train.CheckpointManager(
            checkpoint, str(shared_dir), max_to_keep=1, checkpoint_name="ckpt"
        )  # only read: this worker never saves into the chief's directory

    @property
    def latest_path(self) -> str | None:
        return self.shared.latest_checkpoint

    def restore_latest(self, warn=None) -> str | None:
        own, self.latest = self.latest, self.shared
        try:
            return super().restore_latest(warn)
        finally:
            self.latest = own


def setup_worker(trainer, run_dir) -> None:
    """Under multi_worker, point a non-chief worker's writes at a temporary directory."""
    if trainer.config.device.strategy != "multi_worker":
        return
    kind, index, chief = devices.task_role()
    if chief:
        return
    temporary = tempfile.mkdtemp(prefix=f"tftrain-{kind}{index}-")
    weakref.finalize(trainer, shutil.rmtree, temporary, ignore_errors=True)
    trainer.worker_temporary_dir = temporary
    shared = RunDir(run_dir)
    trainer.run = RunDir(temporary)
    trainer.summaries = SummaryLog(trainer.run.logs, enabled=False)
    trainer.keeper = WorkerCheckpointKeeper(
        trainer.checkpoint,
        shared_dir=shared.checkpoints,
        latest_dir=trainer.run.checkpoints,
        best_dir=trainer.run.best,
        max_to_keep=1,
    )
    say(
        f"{kind} {index}: not the chief; resuming from {shared.checkpoints}, writing "
        f"checkpoints to {temporary} (removed at exit)",
        quiet=trainer.quiet,
    )
