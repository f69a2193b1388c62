"""`strategy: parameter_server`: ParameterServerStrategy with a ClusterCoordinator.

The successor of the tutorials' between-graph replication with `tf.train.replica_device_setter`:
variables live on the ps tasks, workers run steps asynchronously, and a coordinator (the
chief) schedules steps with `coordinator.schedule` and does everything else: checkpoints,
evaluation, summaries, run files. The ps and worker processes only run a `tf.distribute.Server`.

Start it with `tftrain launch --workers 2 --ps 1 CONFIG` or by hand, one process per task,
each with TF_CONFIG naming the whole cluster and its own task (see docs/devices.md).

Training is asynchronous, so results differ from single-device training. Every worker reads
its own shuffled, repeated copy of the training split; an "epoch" here is `steps_per_epoch`
scheduled steps, not an exact pass over the data.
"""

from __future__ import annotations

import os
import time

import numpy as np

from tftrain import devices
from tftrain.errors import ConfigError, TrainingError
from tftrain.lazy import keras, tf
from tftrain.models.base import stacked_sums
from tftrain.runners.checkpoints import CheckpointKeeper
from tftrain.runners.optim import build_optimizer
from tftrain.runners.progress import say
from tftrain.runners.rundir import RunDir, versions
from tftrain.runners.summaries import SummaryLog


def serve(kind: str, index: int) -> None:
    """A ps or worker task: run the server until the launcher or the user stops it."""
    cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(
        cluster.cluster_spec(), job_name=kind, task_index=index, protocol="grpc", start=True
    )
    server.join()


class ParameterServerTrainer:
    """The chief's coordinator loop; for ps/worker tasks, `fit` serves instead."""

    def __init__(self, config, run_dir, *, quiet: bool = False):
        from tftrain.registry import build_dataset, build_model

        self.config = config
        self.quiet = quiet
        self.run = RunDir(run_dir)
        devices.read_tf_config("parameter_server")
        self.kind, self.index, chief = devices.task_role()
        os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")  # fail fast on dead workers
        devices.apply(config.device, report=lambda text: say(text, quiet=quiet))
        if self.kind in ("ps", "worker"):
            return
        if not chief:
            raise TrainingError(f"parameter_server: unexpected task type {self.kind!r}")
        unsupported = [
            key
            for key, value in [
                ("train.ema_decay", config.train.ema_decay),
                (
                    "train.grad_accumulation_steps",
                    getattr(config.train, "grad_accumulation_steps", 1) > 1,
                ),
                ("train.mixed_precision", getattr(config.train, "mixed_precision", None)),
                ("device.jit_compile", config.device.jit_compile),
            ]
            if value
        ]
        if unsupported:
            raise ConfigError(
                f"config error: {', '.join(unsupported)} not supported with "
                f"device.strategy: parameter_server; use multi_worker or mirrored"
            )
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        self.strategy = tf.distribute.ParameterServerStrategy(resolver)
        self.coordinator = tf.distribute.coordinator.ClusterCoordinator(self.strategy)
        keras.utils.set_random_seed(config.seed)
        self.dataset = build_dataset(config)
        self.spec = self.dataset.spec()
        train = config.train
        self.batch_size = train.batch_size
        self.steps_per_epoch = self.dataset.steps("train", self.batch_size)
        with self.strategy.scope():
            self.model = build_model(config, self.spec)
            self.variables = self.model.network.trainable_variables
            self.optimizer, self.schedule = build_optimizer(train, self.steps_per_epoch)
            self.optimizer.build(self.variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            # The Trainer's checkpoint layout, so eval/export/resume read this run as any other.
            unused = {
                "step_in_epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
                "best_value": tf.Variable(float("nan"), dtype=tf.float64, trainable=False),
                "bad_evaluations": tf.Variable(0, dtype=tf.int64, trainable=False),
            }
        self.checkpoint = tf.train.Checkpoint(
            model=self.model.network,
            optimizer=self.optimizer,
            step=self.step,
            epoch=self.epoch,
            lr_multiplier=self.schedule.multiplier,
            ema=[],
            **unused,
        )
        self.keeper = CheckpointKeeper(
            self.checkpoint,
            latest_dir=self.run.checkpoints,
            best_dir=self.run.best,
            max_to_keep=config.checkpoint.max_to_keep,
        )
        self.summaries = SummaryLog(self.run.logs, enabled=config.summaries.enabled)

    # --- steps scheduled on the workers ---------------------------------------------------

    def _per_worker_dataset(self):
        dataset = self.dataset

        def make():
            shuffle = self.config.train.shuffle
            data = dataset.batches("train", self.batch_size, epoch=0, shuffle=shuffle)
            return data.repeat().shuffle(64) if shuffle else data.repeat()

        return self.coordinator.create_per_worker_dataset(make)

    def _replica_step(self, features, labels):
        train = self.config.train
        with tf.GradientTape() as tape:
            outputs, _ = self.model.forward(features, training=True)
            metrics = self.model.losses_and_metrics(labels, outputs)
            loss_sum, count = metrics["loss"]
            objective = loss_sum / tf.maximum(tf.cast(count, loss_sum.dtype), 1.0)
            if train.l2:
                weights = self.model.regularized_variables()
                objective += train.l2 * tf.add_n([tf.nn.l2_loss(w) for w in weights])
        gradients = tape.gradient(objective, self.variables)
        if train.clip_grad_norm:
            gradients, _ = tf.clip_by_global_norm(gradients, train.clip_grad_norm)
        self.optimizer.apply_gradients(zip(gradients, self.variables, strict=True))
        return stacked_sums(metrics)

    def _worker_step(self, iterator):
        features, labels = next(iterator)
        return self.strategy.run(self._replica_step, args=(features, labels))

    # --- the coordinator's loop -------------------------------------------------------------

    def fit(self) -> dict:
        if self.kind in ("ps", "worker"):
            say(f"{self.kind} {self.index}: serving for the coordinator", quiet=self.quiet)
            serve(self.kind, self.index)
            return {}
        self.run.create()
        resumed = self.keeper.restore_latest()
        if resumed:
            say(f"resuming from {resumed}: epoch {int(self.epoch.numpy()) + 1}", quiet=self.quiet)
        self.run.config_file.write_text(self.config.to_yaml())
        self.run.save_spec(self.spec)
        self.run.write_run(
            status="running",
            name=self.config.name,
            seed=self.config.seed,
            config_hash=self.config.digest(),
            versions=versions(),
            strategy="parameter_server",
            steps_per_epoch=self.steps_per_epoch,
        )
        step_fn = tf.function(self._worker_step)
        iterator = iter(self._per_worker_dataset())
        started = time.perf_counter()
        limit = self.config.train.max_steps
        while int(self.epoch.numpy()) < self.config.train.epochs:
            step = int(self.step.numpy())
            count = (
                self.steps_per_epoch if limit is None else min(self.steps_per_epoch, limit - step)
            )
            if count <= 0:
                break
            epoch_started = time.perf_counter()
            results = [self.coordinator.schedule(step_fn, args=(iterator,)) for _ in range(count)]
            self.coordinator.join()
            totals = {}
            for result in results:
                for name, value in result.fetch().items():
                    totals[name] = totals.get(name, 0) + np.asarray(value)
            if not all(np.isfinite(value).all() for value in totals.values()):
                self.run.write_run(status="failed", failure="non-finite loss")
                raise TrainingError(
                    f"loss became NaN or Inf in epoch {int(self.epoch.numpy()) + 1}; "
                    f"the last good checkpoint is {self.keeper.latest_path}"
                )
            self.step.assign_add(count)
            self.epoch.assign_add(1)
            step = int(self.step.numpy())
            metrics = self.model.finalize_metrics({k: float(s / c) for k, (s, c) in totals.items()})
            seconds = max(time.perf_counter() - epoch_started, 1e-9)
            metrics["examples_per_second"] = count * self.batch_size / seconds
            self.summaries.scalars("train", step, metrics)
            self.run.append_metrics({"split": "train", "step": step, **metrics})
            valid = self.evaluate("valid") if self.dataset.num_examples("valid") else {}
            if valid:
                self.summaries.scalars("valid", step, valid)
                self.run.append_metrics({"split": "valid", "step": step, **valid})
                shown = "  ".join(f"{k} {v:.4f}" for k, v in valid.items())
                say(
                    f"epoch {int(self.epoch.numpy())} (step {step})  valid: {shown}",
                    quiet=self.quiet,
                )
            self.keeper.save(step)
        self.summaries.close()
        results = {
            split: self.evaluate(split)
            for split in self.config.eval.final_splits
            if self.dataset.num_examples(split)
        }
        self.run.append_metrics({"event": "final", "step": int(self.step.numpy()), **results})
        self.run.write_run(
            status="finished",
            step=int(self.step.numpy()),
            epoch=int(self.epoch.numpy()),
            train_seconds=round(time.perf_counter() - started, 2),
            final=results,
        )
        return results

    def evaluate(self, split: str) -> dict:
        """Evaluated on the coordinator, reading the variables from the ps tasks."""
        batch_size = self.config.eval.batch_size or self.batch_size
        totals = {}
        for features, labels in self.dataset.batches(split, batch_size):
            outputs, _ = self.model.forward(features, training=False)
            for name, (s, c) in self.model.losses_and_metrics(labels, outputs).items():
                pair = np.array([float(s), float(c)])
                totals[name] = totals.get(name, 0) + pair
        return self.model.finalize_metrics({k: float(s / c) for k, (s, c) in totals.items()})
