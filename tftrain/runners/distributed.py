"""Training under a `tf.distribute` strategy: the replicated step, and multi-worker roles.

The replicated step runs `TrainStep`'s pieces per replica (runners/step.py), which keep the
single-device semantics exactly. The NaN guard needs care: a synchronisation point (the
optimizer's gradient all-reduce) cannot sit inside a tensor `if` in a replica function
("merge_call called while defining a new graph"). So one `strategy.run` computes the gradients
and an all-reduced finite flag, and a second `strategy.run`, inside `if finite:` in the
cross-replica context, applies them.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from tftrain import devices
from tftrain.lazy import tf
from tftrain.runners import checkpoint_files
from tftrain.runners.checkpoints import CheckpointKeeper
from tftrain.runners.progress import say
from tftrain.runners.rundir import RunDir
from tftrain.runners.summaries import SummaryLog


class ReplicatedStep:
    """A `TrainStep` run on every replica; called in the cross-replica context."""

    def __init__(self, step, strategy):
        self.step = step
        self.strategy = strategy

    def __call__(self, features, labels, state):
        strategy = self.strategy
        gradients, sums, new_state, finite = strategy.run(
            self._gradients, args=(features, labels, state)
        )
        finite = strategy.experimental_local_results(finite)[0]  # equal on every replica
        if finite:
            strategy.run(self._apply, args=(gradients,))
            self.step.average()
        # The loop counts the step (applied or skipped) after this returns.
        total = tf.distribute.ReduceOp.SUM
        sums = {name: strategy.reduce(total, value, axis=None) for name, value in sums.items()}
        return sums, new_state, finite

    def _gradients(self, features, labels, state):
        context = tf.distribute.get_replica_context()
        total = tf.distribute.ReduceOp.SUM
        objective, gradients, sums, new_state = self.step.objective_and_gradients(
            features, labels, state, context=context
        )
        if self.step.train.clip_grad_norm:
            # Clipping needs the global gradient: reduce here, then hand the optimizer a
            # 1/replicas share that its own all-reduce sums back to the clipped gradient.
            gradients = self.step.clip(context.all_reduce(total, gradients))
            gradients = [g / context.num_replicas_in_sync for g in gradients]
        ok = self.step.is_finite(objective, gradients)
        bad = context.all_reduce(total, 1.0 - tf.cast(ok, tf.float32))
        return gradients, sums, new_state, tf.equal(bad, 0.0)

    def _apply(self, gradients):
        optimizer = self.step.state.optimizer
        optimizer.apply_gradients(zip(gradients, self.step.state.variables, strict=True))


def distribute_epoch(strategy, model, data, batch_size: int):
    """An epoch's global batches split across replicas, and the per-replica initial state."""
    distributed = strategy.experimental_distribute_dataset(data)
    if not model.initial_state(batch_size):
        return distributed, ()
    replicas = strategy.num_replicas_in_sync
    state = strategy.experimental_distribute_values_from_function(
        lambda context: model.initial_state(batch_size // replicas)
    )
    return distributed, state


class WorkerCheckpointKeeper(CheckpointKeeper):
    """A non-chief worker's keeper: saves into its temporary directory (every worker must call
    save under MultiWorkerMirroredStrategy) and resumes from the chief's checkpoints."""

    def __init__(self, checkpoint, *, shared_dir: Path, **kwargs):
        super().__init__(checkpoint, repair=False, **kwargs)
        self.read_dir = Path(shared_dir)  # only read: never saves into the chief's directory

    @property
    def latest_path(self) -> str | None:
        return (checkpoint_files.on_disk(self.read_dir) or [None])[-1]


def worker_outputs(config, run_dir, checkpoint, *, quiet: bool, owner):
    """(run dir, keeper, summaries) for this process: the run's own, or, for a non-chief
    multi-worker process, a temporary directory removed when `owner` is collected."""
    run = RunDir(run_dir)
    if config.device.strategy != "multi_worker":
        return None
    kind, index, chief = devices.task_role()
    if chief:
        return None
    temporary = tempfile.mkdtemp(prefix=f"tftrain-{kind}{index}-")
    weakref.finalize(owner, shutil.rmtree, temporary, ignore_errors=True)
    own = RunDir(temporary)
    keeper = WorkerCheckpointKeeper(
        checkpoint,
        shared_dir=run.checkpoints,
        latest_dir=own.checkpoints,
        best_dir=own.best,
        max_to_keep=1,
    )
    say(
        f"{kind} {index}: not the chief; resuming from {run.checkpoints}, writing "
        f"checkpoints to {temporary} (removed at exit)",
        quiet=quiet,
    )
    return own, keeper, SummaryLog(own.logs, enabled=False)
