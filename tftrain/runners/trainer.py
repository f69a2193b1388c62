"""The shared training loop: one `run_epoch` for every model, and `fit` around it.

The step is compiled once with `tf.function`; `train.steps_per_loop` steps run inside one call,
and the host reads values back only at log, checkpoint and validation boundaries, so small
models are not slowed by a round trip per step. Around the loop sit small, separate concerns:
checkpoints (`checkpoints.py`), summaries (`summaries.py`), progress (`progress.py`), early
stopping and stop signals (`stopping.py`), the NaN policy (`numerics.py`), mixed precision
(`precision.py`), gradient accumulation (`accumulation.py`), strategies (`distributed.py`)
and warm starts (`warm_start.py`). The loop knows nothing of any model's maths: it asks the
model for outputs, the per-batch (sum, count) of each metric, and the state to carry.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from tftrain import devices
from tftrain.errors import ConfigError, TftrainError, TrainingError
from tftrain.lazy import keras, tf
from tftrain.models.base import stacked_sums
from tftrain.registry import build_dataset, build_model
from tftrain.runners import distributed, precision
from tftrain.runners.accumulation import GradientAccumulator
from tftrain.runners.checkpoints import CheckpointKeeper
from tftrain.runners.numerics import NonFiniteGuard, RollbackRequested
from tftrain.runners.optim import WeightAverager, build_optimizer
from tftrain.runners.progress import Progress, say
from tftrain.runners.rundir import RunDir, versions
from tftrain.runners.stopping import EarlyStopping, Interrupted, StopSignal, better
from tftrain.runners.summaries import SummaryLog

ALL_STEPS = 2**31 - 1


def mean_metrics(totals: dict) -> dict:
    """{name: [sum, count]} -> {name: sum / count}."""
    return {name: float(s / c) if c else float("nan") for name, (s, c) in totals.items()}


class Trainer:
    """Builds a run's data, model, optimizer and checkpoint from its config, then trains it."""

    def __init__(self, config, run_dir, *, quiet: bool = False, for_training: bool = True):
        self.config = config
        self.run = RunDir(run_dir)
        self.quiet = quiet
        self.stop = None
        train = config.train
        devices.apply(config.device, report=lambda text: say(text, quiet=quiet))
        # Strategies are for training (runners/distributed.py); eval and export use one device.
        self.distributed = for_training and config.device.strategy != "default"
        self.strategy = devices.strategy(config.device if self.distributed else None)
        if self.distributed and (train.grad_accumulation_steps > 1 or train.mixed_precision):
            raise ConfigError(
                "config error: train.grad_accumulation_steps and train.mixed_precision are not "
                "supported with device.strategy other than 'default' yet"
            )
        if train.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)
        self.precision = precision.set_policy(train)
        self.dataset = build_dataset(config)
        self.spec = self.dataset.spec()
        # Model, optimizer and checkpointed variables live under the strategy
        # (runners/distributed.py); the default strategy's scope costs nothing.
        with self.strategy.scope():
            self.model = build_model(config, self.spec)
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
            updates_per_epoch = (
                self.steps_per_epoch // train.grad_accumulation_steps
                if self.steps_per_epoch
                else None
            )
            self.base_optimizer, self.schedule = build_optimizer(train, updates_per_epoch)
            self.optimizer = precision.wrap_optimizer(self.base_optimizer, self.precision)
            self.optimizer.build(self.variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="step_in_epoch"
            )
            # No NaN sentinel here: check_numerics would flag it. `has_best` says "seen one".
            self.best_value = tf.Variable(0.0, dtype=tf.float64, trainable=False)
            self.has_best = tf.Variable(False, trainable=False)
            self.bad_evaluations = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.averager = (
                WeightAverager(self.variables, train.ema_decay) if train.ema_decay else None
            )
            self.accumulator = (
                GradientAccumulator(self.variables, train.grad_accumulation_steps)
                if train.grad_accumulation_steps > 1
                else None
            )
            self.guard = NonFiniteGuard(train)
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
                # Dropout's seed-generator states are not tracked by the Keras model; saving
                # them is what makes a resumed run draw the same dropout masks.
                rng=[v for v in self.model.network.variables if "seed_generator" in v.path],
                accumulated=(
                    [*self.accumulator.sums, self.accumulator.count] if self.accumulator else []
                ),
            )
        self.keeper = CheckpointKeeper(
            self.checkpoint,
            latest_dir=self.run.checkpoints,
            best_dir=self.run.best,
            max_to_keep=config.checkpoint.max_to_keep,
        )
        self.summaries = SummaryLog(
            self.run.logs, enabled=config.summaries.enabled and for_training
        )
        self.metric_names = self._probe_metric_names()
        self._train_steps = tf.function(self._train_steps_python)
        self._eval_steps = tf.function(self._eval_steps_python)
        # A model may apply its own update (word2vec's fused kernel) when no train setting
        # needs the gradients.
        self.in_place = for_training and self.model.in_place_update(gradient_needs(config))
        if self.in_place:
            self._step_fn = self._in_place_step
        elif config.device.jit_compile:
            self._step_fn = tf.function(self._train_step, jit_compile=True)
        else:
            self._step_fn = self._train_step
        if self.distributed:  # multi-replica step and non-chief worker dirs
            if config.device.jit_compile:
                say(
                    f"note: device.jit_compile is not applied under device.strategy: "
                    f"{config.device.strategy}; the replicated step runs without XLA",
                    quiet=quiet,
                )
            self._step_fn = distributed.ReplicatedStep(self)
            distributed.setup_worker(self, run_dir)

    # --- the compiled steps --------------------------------------------------------------

    def _probe_metric_names(self) -> list[str]:
        """Run one batch eagerly to learn which metrics the model reports."""
        # The training split holds at least one full batch (checked above); valid may not.
        batch = next(iter(self.dataset.batches("train", self.batch_size, drop_remainder=True)))
        features, labels = batch
        outputs, _ = self.model.forward(
            features, training=False, state=self.model.initial_state(self.batch_size)
        )
        names = sorted(self.model.losses_and_metrics(labels, precision.as_float32(outputs)))
        if "loss" not in names:
            raise TypeError(f"{type(self.model).__name__}.losses_and_metrics must return 'loss'")
        names.remove("loss")
        return ["loss", *names]

    def _zero_totals(self):
        return {name: tf.zeros([2], tf.float32) for name in self.metric_names}

    def _train_step(self, features, labels, state):
        """Forward, backward, and (if finite) update; returns (metric sums, state, finite)."""
        train = self.config.train
        with tf.GradientTape() as tape:
            outputs, new_state = self.model.forward(features, training=True, state=state)
            metrics = self.model.losses_and_metrics(labels, precision.as_float32(outputs))
            loss_sum, count = metrics["loss"]
            objective = tf.cast(loss_sum, tf.float32) / tf.maximum(tf.cast(count, tf.float32), 1.0)
            if train.l2:
                weights = self.model.regularized_variables()
                objective += train.l2 * tf.add_n([tf.nn.l2_loss(w) for w in weights])
            scaled = (
                self.optimizer.scale_loss(objective)
                if self.precision == "mixed_float16"
                else objective
            )
        gradients = tape.gradient(scaled, self.variables)
        # Sparse (IndexedSlices) gradients of embedding lookups stay sparse, so the optimizer
        # scatters only the rows a batch touched (word2vec); accumulation needs them dense.
        gradients = [
            tf.zeros_like(v)
            if g is None
            else g
            if isinstance(g, tf.IndexedSlices) and self.accumulator is None
            else tf.convert_to_tensor(g)
            for g, v in zip(gradients, self.variables, strict=True)
        ]
        if self.precision == "mixed_float16":
            # The loss-scale optimizer skips overflowing steps itself and lowers the scale.
            finite = tf.math.is_finite(objective)
        else:
            finite = tf.logical_and(
                tf.math.is_finite(objective), tf.math.is_finite(tf.linalg.global_norm(gradients))
            )
        if finite:
            if self.accumulator is not None:
                self.accumulator.add(gradients)
                if self.accumulator.ready():
                    self._apply(self.accumulator.mean())
                    self.accumulator.reset()
            else:
                self._apply(gradients)
        return stacked_sums(metrics), new_state, finite

    def _in_place_step(self, features, labels, state):
        """The model updates its variables itself at the schedule's learning rate; the
        optimizer only counts the step (so schedules, rollback and resume work as usual)."""
        rate = self.schedule(self.base_optimizer.iterations)
        metrics = self.model.train_in_place(features, rate)
        self.base_optimizer.iterations.assign_add(1)
        if self.averager is not None:
            self.averager.update(self.base_optimizer.iterations)
        finite = tf.math.is_finite(metrics["loss"][0])
        return stacked_sums(metrics), state, finite

    def _apply(self, gradients) -> None:
        if self.config.train.clip_grad_norm:
            gradients, _ = tf.clip_by_global_norm(gradients, self.config.train.clip_grad_norm)
        self.optimizer.apply_gradients(zip(gradients, self.variables, strict=True))
        if self.averager is not None:
            self.averager.update(self.base_optimizer.iterations)

    def _train_steps_python(self, iterator, state, num_steps, totals):
        """Up to `num_steps` steps (fewer at the end of data); adds their metrics to `totals`.

        Every batch counts as a step, applied or (being non-finite) skipped, so `step` and
        `step_in_epoch` are also the position in the data.
        """
        steps = tf.constant(0)
        for _ in tf.range(num_steps):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            features, labels = optional.get_value()
            sums, state, finite = self._step_fn(features, labels, state)
            self.step.assign_add(1)
            self.step_in_epoch.assign_add(1)
            self.guard.record(finite, self.step)
            if finite:
                totals = {name: totals[name] + sums[name] for name in self.metric_names}
            steps += 1
        return totals, state, steps

    def _eval_steps_python(self, iterator, state, num_steps):
        totals = self._zero_totals()
        steps = tf.constant(0)
        for _ in tf.range(num_steps):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            features, labels = optional.get_value()
            outputs, state = self.model.forward(features, training=False, state=state)
            metrics = self.model.losses_and_metrics(labels, precision.as_float32(outputs))
            sums = stacked_sums(metrics)
            totals = {name: totals[name] + sums[name] for name in sums}
            steps += 1
        return totals, state, steps

    # --- one pass over a split -----------------------------------------------------------

    def run_epoch(self, split: str, training: bool, *, on_sync=None, max_batches=None) -> dict:
        """One pass over `split`: trains if `training`, else evaluates. Returns mean metrics.

        Training resumes at `step_in_epoch` of the current epoch. At each host
        synchronisation (log, checkpoint and validation boundaries, a stop request, the end
        of the epoch) it applies the NaN policy and calls `on_sync(step, totals)` with the
        metric sums since the previous one; `on_sync` returns False to end the epoch early.
        """
        batch_size = self.batch_size if training else self.eval_batch_size
        epoch = int(self.epoch.numpy())
        skip = int(self.step_in_epoch.numpy()) if training else 0
        # Training batches may be augmented (data.augment); evaluation batches never are.
        make_batches = self.dataset.training_batches if training else self.dataset.batches
        data = make_batches(
            split,
            batch_size,
            epoch=epoch,
            skip=skip,
            shuffle=training and self.config.train.shuffle,
            drop_remainder=self.drop_remainder,
        )
        data = data.with_options(loop_pipeline_options())
        state = self.model.initial_state(batch_size)
        if training and self.distributed:
            data, state = distributed.distribute_epoch(self, data, batch_size)
        iterator = iter(data)
        totals = {name: np.zeros(2) for name in self.metric_names}
        if not training:
            limit = max_batches or ALL_STEPS
            chunk, state, _ = self._eval_steps(iterator, state, tf.constant(limit))
            for name, value in chunk.items():
                totals[name] += value.numpy()
            return self.model.finalize_metrics(mean_metrics(totals))
        step = int(self.step.numpy())
        in_epoch = skip
        window = self._zero_totals()
        while True:
            size = self._next_chunk_size(step)
            if self.steps_per_epoch:
                size = min(size, self.steps_per_epoch - in_epoch)
            if size <= 0:
                break
            window, state, done = self._train_steps(iterator, state, tf.constant(size), window)
            # The host only waits for the device when it must: at boundaries, or every call
            # when the epoch's length is unknown (streamed data).
            done = size if self.steps_per_epoch else int(done)
            step += done
            in_epoch += done
            ended = done < size or (self.steps_per_epoch and in_epoch >= self.steps_per_epoch)
            stopping = self.stop is not None and self.stop.requested
            if ended or stopping or self._is_boundary(step):
                step = int(self.step.numpy())
                in_epoch = int(self.step_in_epoch.numpy())
                synced = {name: value.numpy() for name, value in window.items()}
                window = self._zero_totals()
                for name, value in synced.items():
                    totals[name] += value
                self.guard.check(epoch=epoch, last_checkpoint=self.keeper.latest_path, say=say)
                keep_going = on_sync(step, synced) if on_sync else True
                if ended or not keep_going:
                    break
        return self.model.finalize_metrics(mean_metrics(totals))

    def _intervals(self) -> list[int]:
        return [
            interval
            for interval in (
                self.config.train.log_every_steps,
                self.config.checkpoint.every_steps,
                self.config.train.validate_every_steps,
            )
            if interval
        ]

    def _is_boundary(self, step: int) -> bool:
        return any(step % interval == 0 for interval in self._intervals()) or (
            self.max_steps is not None and step >= self.max_steps
        )

    def _next_chunk_size(self, step: int) -> int:
        """Steps until the next log, checkpoint, validation or the end of training."""
        size = self.config.train.steps_per_loop
        for interval in self._intervals():
            size = min(size, interval - step % interval)
        if self.max_steps is not None:
            size = min(size, self.max_steps - step)
        return max(size, 0)

    @property
    def max_steps(self) -> int | None:
        return self.config.train.max_steps

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
        with self.run.lock(), self._numeric_checks():
            return self._fit()

    @contextlib.contextmanager
    def _numeric_checks(self):
        """`train.check_numerics`: TensorFlow checks every op's output while training."""
        if not self.config.train.check_numerics:
            yield
            return
        tf.debugging.enable_check_numerics()
        try:
            yield
        finally:
            tf.debugging.disable_check_numerics()  # process-wide: do not leak into callers

    def _fit(self) -> dict:
        resumed = self.keeper.restore_latest(warn=lambda text: say(text, quiet=self.quiet))
        self._write_run_files(resumed)
        if resumed:
            say(
                f"resuming from {resumed}: step {int(self.step.numpy())}, "
                f"epoch {int(self.epoch.numpy()) + 1}, batch {int(self.step_in_epoch.numpy())}",
                quiet=self.quiet,
            )
        else:
            self._warm_start()
            self.keeper.save(0)  # a last good checkpoint exists from the start (NaN rollback)
        self.early_stopping = EarlyStopping(
            self.config.train.early_stopping, self.model.higher_is_better, self.bad_evaluations
        )
        self.has_valid = bool(self.dataset.num_examples("valid"))
        self.guard.reset()
        stopped_early = False
        started = time.perf_counter()
        with StopSignal() as stop:
            self.stop = stop
            try:
                while not self._finished():
                    try:
                        self._train_one_epoch()
                    except RollbackRequested as rollback:
                        self._roll_back(rollback.bad_step)
                        continue
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
            except tf.errors.InvalidArgumentError as error:
                self.summaries.close()
                if "Tensor had" not in str(error):  # not a check_numerics report
                    raise
                self.run.write_run(status="failed", failure="check_numerics")
                raise TrainingError(
                    f"train.check_numerics found a NaN or Inf at step "
                    f"{int(self.step.numpy()) + 1}; first op with a NaN or Inf output: "
                    f"{numerics_culprit(str(error))}. The last good checkpoint is "
                    f"{self.keeper.latest_path}."
                ) from None
            except TftrainError as error:
                self.summaries.close()
                if not isinstance(error, Interrupted):
                    self.run.write_run(status="failed", failure=str(error).splitlines()[0])
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
            skipped_steps=int(self.guard.skipped.numpy()),
            rollbacks=self.guard.rollbacks,
            train_seconds=round(time.perf_counter() - started, 2),
            final=results,
        )
        return results

    def _warm_start(self) -> None:
        init_from = self.config.train.init_from
        if init_from is None:
            return
        from tftrain.runners.warm_start import warm_start

        report = warm_start(self.model, init_from)
        if self.averager is not None:  # the average starts from the warm weights
            for shadow, variable in zip(self.averager.shadows, self.variables, strict=True):
                shadow.assign(variable)
        say(
            f"warm start from {report['checkpoint']}: restored {', '.join(report['restored'])}; "
            f"fresh: {', '.join(report['fresh']) or 'none'}",
            quiet=self.quiet,
        )
        self.run.write_run(warm_start=report)

    def _roll_back(self, bad_step: int) -> None:
        """Restore the last good checkpoint and lower the learning rate (train.on_nan: rollback)."""
        train = self.config.train
        guard = self.guard
        if guard.rollbacks >= train.max_rollbacks:
            raise TrainingError(
                f"loss became NaN or Inf at step {bad_step} after {guard.rollbacks} rollbacks "
                f"(train.max_rollbacks={train.max_rollbacks}); stopped. The last good "
                f"checkpoint is {self.keeper.latest_path}."
            )
        multiplier = float(self.schedule.multiplier.numpy()) * train.nan_lr_backoff
        path = self.keeper.restore_latest(warn=lambda text: say(text, quiet=self.quiet))
        self.schedule.multiplier.assign(multiplier)
        guard.rollbacks += 1
        guard.reset()
        say(
            f"warning: NaN or Inf loss at step {bad_step}; rolled back to {path} (step "
            f"{int(self.step.numpy())}) with the learning rate x{multiplier:g} (rollback "
            f"{guard.rollbacks} of {train.max_rollbacks})",
            quiet=self.quiet,
        )

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
            unit=self.spec.throughput_unit,
        )
        units_per_step = self.batch_size * self.spec.units_per_example
        window = {"totals": None, "steps": 0, "started": time.perf_counter()}
        last = {"step": int(self.step.numpy())}

        def on_sync(step: int, totals: dict) -> bool:
            steps = step - last["step"]
            last["step"] = step
            if window["totals"] is None:
                window["totals"] = {k: np.zeros(2) for k in totals}
            for name, value in totals.items():
                window["totals"][name] += value
            window["steps"] += steps
            progress.update(steps, steps * units_per_step, {"loss": chunk_loss(totals)})
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
            self.run_epoch("train", training=True, on_sync=on_sync)
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
            "learning_rate": float(self.schedule(self.base_optimizer.iterations)),
            "examples_per_second": window["steps"] * self.batch_size / elapsed,
        }
        unit = self.spec.throughput_unit
        if unit != "examples":
            values[f"{unit}_per_second"] = (
                values["examples_per_second"] * self.spec.units_per_example
            )
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
        best = float(self.best_value.numpy()) if bool(self.has_best.numpy()) else math.nan
        if better(value, best, higher, 0.0):
            self.best_value.assign(value)
            self.has_best.assign(True)
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
            precision=self.precision,
        )


def loop_pipeline_options():
    """tf.data options for the loop's per-epoch iterators: autotuning off.

    With autotuning on, deleting an epoch's iterator waits for tf.data's model-optimisation
    thread; on 2 cores that took 0.4-3 s at the end of most seq2seq epochs (3.3 s of training
    each). Without it, AUTOTUNE parallelism is the core count and AUTOTUNE prefetch buffers
    grow as the consumer waits, which kept the same step times.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def gradient_needs(config) -> list[str]:
    """Settings that need the loop's gradients, so rule out a model's in-place update."""
    train, device = config.train, config.device
    needs = {
        f"train.optimizer.name={train.optimizer.name} (in place is plain sgd)": (
            train.optimizer.name != "sgd"
        ),
        "train.clip_grad_norm": bool(train.clip_grad_norm),
        "train.l2": bool(train.l2),
        "train.grad_accumulation_steps": train.grad_accumulation_steps > 1,
        "train.mixed_precision": bool(train.mixed_precision),
        "train.on_nan=skip_batch (an applied update cannot be skipped)": (
            train.on_nan == "skip_batch"
        ),
        f"device.strategy={device.strategy}": device.strategy != "default",
        "device.jit_compile": bool(device.jit_compile),
    }
    return [name for name, needed in needs.items() if needed]


def numerics_culprit(message: str) -> str:
    """The op a check_numerics error names, e.g. "GatherV2" from ".../CheckNumericsV2"."""
    import re

    found = re.search(r"Detected at node (\S+)", message)
    if not found:
        return message.splitlines()[0]
    return found.group(1).removesuffix("/CheckNumericsV2").rstrip(":")


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
