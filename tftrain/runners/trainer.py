"""The shared training loop: one `run_epoch` for every model, and `fit` around it.

The step is compiled once with `tf.function`; `train.steps_per_loop` steps run inside one call.
Around the loop sit small, separate concerns: checkpoints (`checkpoints.py`), summaries
(`summaries.py`), progress (`progress.py`), early stopping and stop signals (`stopping.py`).
The loop knows nothing of any model's maths: it asks the model for outputs, the per-batch
(sum, count) of each metric, and the state to carry to the next batch.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from tftrain import devices
from tftrain.errors import TftrainError, TrainingError
from tftrain.lazy import keras, tf
from tftrain.registry import datasets, models
from tftrain.runners.checkpoints import CheckpointKeeper
from tftrain.runners.optim import WeightAverager, build_optimizer
from tftrain.runners.progress import Progress, say
from tftrain.runners.rundir import RunDir, versions
from tftrain.runners.stopping import EarlyStopping, Interrupted, StopSignal, better
from tftrain.runners.summaries import SummaryLog

ALL_STEPS = 2**31 - 1


def build_dataset(config):
    return datasets.get(config.data.type)(config.data, seed=config.seed)


def build_model(config, spec):
    return models.get(config.model.type)(config.model, spec)


def mean_metrics(totals: dict) -> dict:
    """{name: [sum, count]} -> {name: sum / count}."""
    return {name: float(s / c) if c else float("nan") for name, (s, c) in totals.items()}


class Trainer:
    """Builds a run's data, model, optimizer and checkpoint from its config, then trains it."""

    def __init__(self, config, run_dir, *, quiet: bool = False, for_training: bool = True):
        self.config = config
        self.run = RunDir(run_dir)
        self.quiet = quiet
        devices.apply(config.device, report=lambda text: say(text, quiet=quiet))
        keras.utils.set_random_seed(config.seed)
        self.dataset = build_dataset(config)
        self.spec = self.dataset.spec()
        self.model = build_model(config, self.spec)
        train = config.train
        self.batch_size = train.batch_size
        self.eval_batch_size = config.eval.batch_size or train.batch_size
        self.drop_remainder = self.model.needs_fixed_batch
        self.steps_per_epoch = self.dataset.steps(
            "train", self.batch_size, drop_remainder=self.drop_remainder
        )
        if self.steps_per_epoch == 0:
            raise TrainingError(
                f"the training split has fewer examples than one batch "
                f"(train.batch_size={self.batch_size})"
            )
        self.variables = self.model.network.trainable_variables
        self.optimizer, self.schedule = build_optimizer(train, self.steps_per_epoch)
        self.optimizer.build(self.variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        self.best_value = tf.Variable(math.nan, dtype=tf.float64, trainable=False)
        self.bad_evaluations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.averager = WeightAverager(self.variables, train.ema_decay) if train.ema_decay else None
        self.checkpoint = tf.train.Checkpoint(
            model=self.model.network,
            optimizer=self.optimizer,
            step=self.step,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            best_value=self.best_value,
            bad_evaluations=self.bad_evaluations,
            lr_multiplier=self.schedule.multiplier,
            ema=self.averager.shadows if self.averager else [],
        )
        self.keeper = CheckpointKeeper(
            self.checkpoint,
            latest_dir=self.run.checkpoints,
            best_dir=self.run.best,
            max_to_keep=config.checkpoint.max_to_keep,
        )
        self.summaries = SummaryLog(self.run.logs, enabled=config.summaries.enabled and for_training)
        self.metric_names = self._probe_metric_names()
        self._train_steps = tf.function(self._train_steps_python)
        self._eval_steps = tf.function(self._eval_steps_python)
        self._step_fn = (
            tf.function(self._train_step, jit_compile=True)
            if config.device.jit_compile
            else self._train_step
        )

    # --- the compiled steps --------------------------------------------------------------

    def _probe_metric_names(self) -> list[str]:
        """Run one batch eagerly to learn which metrics the model reports."""
        split = "valid" if self.dataset.num_examples("valid") else "train"
        batch = next(iter(self.dataset.batches(split, self.batch_size, drop_remainder=True)))
        features, labels = batch
        outputs, _ = self.model.forward(
            features, training=False, state=self.model.initial_state(self.batch_size)
        )
        names = sorted(self.model.losses_and_metrics(labels, outputs))
        if "loss" not in names:
            raise TypeError(f"{type(self.model).__name__}.losses_and_metrics must return 'loss'")
        names.remove("loss")
        return ["loss", *names]

    def _zero_totals(self):
        return {name: tf.zeros([2], tf.float32) for name in self.metric_names}

    def _train_step(self, features, labels, state):
        train = self.config.train
        with tf.GradientTape() as tape:
            outputs, new_state = self.model.forward(features, training=True, state=state)
            metrics = self.model.losses_and_metrics(labels, outputs)
            loss_sum, count = metrics["loss"]
            loss = loss_sum / tf.maximum(count, 1.0)
            objective = loss
            if train.l2:
                weights = self.model.regularized_variables()
                objective += train.l2 * tf.add_n([tf.nn.l2_loss(w) for w in weights])
        gradients = tape.gradient(objective, self.variables)
        if train.clip_grad_norm:
            gradients, norm = tf.clip_by_global_norm(gradients, train.clip_grad_norm)
        else:
            norm = tf.linalg.global_norm(gradients)
        finite = tf.logical_and(tf.math.is_finite(objective), tf.math.is_finite(norm))
        if finite:
            self.optimizer.apply_gradients(zip(gradients, self.variables, strict=True))
            if self.averager is not None:
                self.averager.update(self.step)
            self.step.assign_add(1)
            self.step_in_epoch.assign_add(1)
        sums = {name: tf.stack([tf.cast(s, tf.float32), tf.cast(c, tf.float32)]) for name, (s, c) in metrics.items()}
        return sums, new_state, finite

    def _train_steps_python(self, iterator, state, num_steps):
        """Up to `num_steps` training steps; stops early at the end of data or a NaN/Inf."""
        totals = self._zero_totals()
        steps = tf.constant(0)
        finite = tf.constant(True)
        for _ in tf.range(num_steps):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            features, labels = optional.get_value()
            sums, state, finite = self._step_fn(features, labels, state)
            if not finite:
                break
            totals = {name: totals[name] + sums[name] for name in self.metric_names}
            steps += 1
        return totals, state, steps, finite

    def _eval_steps_python(self, iterator, state, num_steps):
        totals = self._zero_totals()
        steps = tf.constant(0)
        for _ in tf.range(num_steps):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            features, labels = optional.get_value()
            outputs, state = self.model.forward(features, training=False, state=state)
            metrics = self.model.losses_and_metrics(labels, outputs)
            totals = {
                name: totals[name] + tf.stack([tf.cast(s, tf.float32), tf.cast(c, tf.float32)])
                for name, (s, c) in metrics.items()
            }
            steps += 1
        return totals, state, steps

    # --- one pass over a split -----------------------------------------------------------

    def run_epoch(self, split: str, training: bool, *, on_chunk=None, max_batches=None) -> dict:
        """One pass over `split`: trains if `training`, else evaluates. Returns mean metrics.

        Training resumes at `step_in_epoch` of the current epoch and calls
        `on_chunk(steps_done, chunk_totals)` after every compiled call; it returns False to
        stop the epoch early.
        """
        batch_size = self.batch_size if training else self.eval_batch_size
        epoch = int(self.epoch.numpy())
        skip = int(self.step_in_epoch.numpy()) if training else 0
        data = self.dataset.batches(
            split,
            batch_size,
            epoch=epoch,
            skip=skip,
            shuffle=training and self.config.train.shuffle,
            drop_remainder=self.drop_remainder,
        )
        iterator = iter(data)
        state = self.model.initial_state(batch_size)
        totals = {name: np.zeros(2) for name in self.metric_names}
        if not training:
            limit = max_batches or ALL_STEPS
            chunk, state, _ = self._eval_steps(iterator, state, tf.constant(limit))
            for name, value in chunk.items():
                totals[name] += value.numpy()
            return self.model.finalize_metrics(mean_metrics(totals))
        while True:
            size = self._next_chunk_size()
            if size == 0:
                break
            chunk, state, steps, finite = self._train_steps(iterator, state, tf.constant(size))
            steps = int(steps)
            chunk = {name: value.numpy() for name, value in chunk.items()}
            for name, value in chunk.items():
                totals[name] += value
            if not bool(finite):
                self._on_non_finite()
            keep_going = on_chunk(steps, chunk) if on_chunk else True
            if steps < size or not keep_going:
                break
        return self.model.finalize_metrics(mean_metrics(totals))

    def _next_chunk_size(self) -> int:
        """Steps until the next log, checkpoint, validation or the end of training."""
        step = int(self.step.numpy())
        size = self.config.train.steps_per_loop
        intervals = [
            self.config.train.log_every_steps,
            self.config.checkpoint.every_steps,
            self.config.train.validate_every_steps,
        ]
        for interval in intervals:
            if interval:
                size = min(size, interval - step % interval)
        if self.max_steps is not None:
            size = min(size, self.max_steps - step)
        return max(size, 0)

    @property
    def max_steps(self) -> int | None:
        return self.config.train.max_steps

    def _on_non_finite(self) -> None:
        step = int(self.step.numpy()) + 1
        last = self.keeper.latest_path
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint had been saved"
        self.run.write_run(status="failed", failure=f"non-finite loss at step {step}")
        raise TrainingError(
            f"loss became NaN or Inf at step {step} (epoch {int(self.epoch.numpy()) + 1}); "
            f"training stopped (train.on_nan: stop) and {kept}. Try a lower learning rate "
            f"or set train.clip_grad_norm."
        )

    # --- evaluation ----------------------------------------------------------------------

    def averaged_weights(self):
        """Context in which the model holds its evaluation weights (the EMA, if enabled)."""
        return self.averager.swapped_in() if self.averager else contextlib.nullcontext()

    def evaluate(self, split: str, *, max_batches=None) -> dict:
        with self.averaged_weights():
            return self.run_epoch(
                split, training=False, max_batches=max_batches or self.config.eval.max_batches
            )

    def restore(self, which: str = "latest") -> str:
        path = self.keeper.resolve(which)
        self.keeper.restore(path)
        return path

    # --- fit -----------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train to `train.epochs` / `train.max_steps`, resuming from the latest checkpoint."""
        self.run.create()
        resumed = self.keeper.restore_latest()
        self._write_run_files(resumed)
        if resumed:
            say(
                f"resuming from {resumed}: step {int(self.step.numpy())}, "
                f"epoch {int(self.epoch.numpy()) + 1}, batch {int(self.step_in_epoch.numpy())}",
                quiet=self.quiet,
            )
        self.early_stopping = EarlyStopping(
            self.config.train.early_stopping, self.model.higher_is_better, self.bad_evaluations
        )
        self.has_valid = bool(self.dataset.num_examples("valid"))
        stopped_early = False
        started = time.perf_counter()
        with StopSignal() as stop:
            self.stop = stop
            try:
                while not self._finished():
                    self._train_one_epoch()
                    if self.stop.requested:
                        raise self._interrupt()
                    if self._reached_max_steps() and int(self.step_in_epoch.numpy()) != 0:
                        self._validate()
                        self.keeper.save(int(self.step.numpy()))
                        break
                    self.epoch.assign_add(1)
                    self.step_in_epoch.assign(0)
                    self._validate()
                    self.keeper.save(int(self.step.numpy()))
                    if self.early_stopping.should_stop:
                        say(
                            f"early stopping: no improvement in valid "
                            f"{self.early_stopping.metric} for "
                            f"{self.config.train.early_stopping.patience} evaluations",
                            quiet=self.quiet,
                        )
                        stopped_early = True
                        break
            except TftrainError:
                self.summaries.close()
                raise
        self.summaries.close()
        results = {}
        for split in self.config.eval.final_splits:
            if self.dataset.num_examples(split):
                results[split] = self.evaluate(split)
        self.run.append_metrics({"event": "final", "step": int(self.step.numpy()), **results})
        self.run.write_run(
            status="finished",
            step=int(self.step.numpy()),
            epoch=int(self.epoch.numpy()),
            stopped_early=stopped_early,
            train_seconds=round(time.perf_counter() - started, 2),
            final=results,
        )
        return results

    def _finished(self) -> bool:
        return int(self.epoch.numpy()) >= self.config.train.epochs or self._reached_max_steps()

    def _reached_max_steps(self) -> bool:
        return self.max_steps is not None and int(self.step.numpy()) >= self.max_steps

    def _train_one_epoch(self) -> None:
        epoch = int(self.epoch.numpy())
        progress = Progress(
            epoch=epoch,
            total=self.steps_per_epoch,
            start=int(self.step_in_epoch.numpy()),
            quiet=self.quiet,
            every=self.config.train.log_every_steps,
        )
        window = {"totals": None, "steps": 0, "started": time.perf_counter()}

        def on_chunk(steps: int, chunk: dict) -> bool:
            step = int(self.step.numpy())
            if window["totals"] is None:
                window["totals"] = {k: np.zeros(2) for k in chunk}
            for name, value in chunk.items():
                window["totals"][name] += value
            window["steps"] += steps
            progress.update(steps, steps * self.batch_size, {"loss": chunk_loss(chunk)})
            if step % self.config.train.log_every_steps == 0:
                self._log_train(window, step, epoch)
            every = self.config.checkpoint.every_steps
            if every and step % every == 0:
                self.keeper.save(step)
            every = self.config.train.validate_every_steps
            if every and step % every == 0:
                self._validate()
            return not self.stop.requested and not self._reached_max_steps()

        try:
            self.run_epoch("train", training=True, on_chunk=on_chunk)
        finally:
            progress.close()
        if window["steps"]:
            self._log_train(window, int(self.step.numpy()), epoch)

    def _log_train(self, window: dict, step: int, epoch: int) -> None:
        if not window["steps"]:
            return
        elapsed = max(time.perf_counter() - window["started"], 1e-9)
        metrics = self.model.finalize_metrics(mean_metrics(window["totals"]))
        values = {
            **metrics,
            "learning_rate": float(self.schedule(self.optimizer.iterations)),
            "examples_per_second": window["steps"] * self.batch_size / elapsed,
        }
        self.summaries.scalars("train", step, values)
        if self.config.summaries.histograms:
            self.summaries.histograms("train", step, self.variables)
        self.run.append_metrics({"split": "train", "step": step, "epoch": epoch + 1, **values})
        window.update(totals=None, steps=0, started=time.perf_counter())

    def _validate(self) -> None:
        if not self.has_valid:
            return
        step = int(self.step.numpy())
        metrics = self.evaluate("valid")
        self.summaries.scalars("valid", step, metrics)
        self.summaries.flush()
        epoch = step / self.steps_per_epoch if self.steps_per_epoch else None
        self.run.append_metrics({"split": "valid", "step": step, "epoch": epoch, **metrics})
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        at = f"epoch {epoch:.2f}" if epoch is not None else f"step {step}"
        say(f"{at} (step {step})  valid: {shown}", quiet=self.quiet)
        self._keep_best(step, metrics)
        self.early_stopping.observe(metrics)

    def _keep_best(self, step: int, metrics: dict) -> None:
        name = self.config.checkpoint.best_metric
        if not name or name not in metrics:
            return
        mode = self.config.checkpoint.best_mode
        higher = name in self.model.higher_is_better if mode == "auto" else mode == "max"
        value = metrics[name]
        if better(value, float(self.best_value.numpy()), higher, 0.0):
            self.best_value.assign(value)
            self.keeper.save_best(step, name, value)

    def _interrupt(self) -> Interrupted:
        step = int(self.step.numpy())
        path = self.keeper.save(step)
        self.run.write_run(status="interrupted", step=step)
        return Interrupted(
            f"interrupted at step {step}; saved {path}. Run the same `tftrain fit` command "
            f"again to resume.",
            signal_number=self.stop.signal_number,
        )

    def _write_run_files(self, resumed) -> None:
        from tftrain.config import load_config

        config_file = self.run.config_file
        if config_file.exists() and resumed:
            previous = load_config(config_file)
            changed = changed_keys(previous.to_dict(), self.config.to_dict())
            if changed:
                say(
                    "warning: the config differs from the one this run started with: "
                    + ", ".join(changed),
                    quiet=self.quiet,
                )
        config_file.write_text(self.config.to_yaml())
        self.run.save_spec(self.spec)
        self.run.write_run(
            status="running",
            name=self.config.name,
            seed=self.config.seed,
            config_hash=self.config.digest(),
            versions=versions(),
            devices=[d.name for d in tf.config.list_logical_devices()],
            steps_per_epoch=self.steps_per_epoch,
        )


def chunk_loss(chunk: dict) -> float:
    total, count = chunk["loss"]
    return float(total / count) if count else float("nan")


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config trees."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys
