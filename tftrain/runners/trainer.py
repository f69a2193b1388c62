"""The fit loop: epochs of `EpochLoop.train`, validation, best checkpoints, early stopping,
the NaN policy's rollback, graceful stops and the run's files.

Around it sit small, separate concerns: the run setup (`setup.py`), the state a checkpoint
holds (`run_state.py`), the step (`step.py`, `distributed.py`), the compiled passes
(`epoch.py`), checkpoints (`checkpoints.py`), summaries, progress, stopping and numerics.
The parameter-server coordinator (`parameter_server.py`) is this loop with its epochs
scheduled on workers; `tftrain.runners.make_trainer` picks it where the config asks.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from tftrain.errors import TrainingError
from tftrain.lazy import tf
from tftrain.runners.checkpoints import CheckpointKeeper
from tftrain.runners.distributed import ReplicatedStep, worker_outputs
from tftrain.runners.epoch import EpochLoop, mean_metrics
from tftrain.runners.hparams import write_hparams
from tftrain.runners.numerics import NonFiniteGuard, RollbackRequested, numerics_culprit
from tftrain.runners.progress import Progress, say
from tftrain.runners.rundir import RunDir, failure_reason
from tftrain.runners.setup import prepare
from tftrain.runners.step import make_step
from tftrain.runners.stopping import EarlyStopping, Interrupted, StopSignal, better
from tftrain.runners.summaries import SummaryLog


def io_error(error: BaseException) -> bool:
    """TensorFlow's own errors for files it cannot write or find, or a full disk."""
    kinds = (tf.errors.PermissionDeniedError, tf.errors.NotFoundError)
    return isinstance(error, (*kinds, tf.errors.ResourceExhaustedError))


class Trainer:
    """Trains a run to `train.epochs` / `train.max_steps`, resuming from its checkpoints."""

    def __init__(self, config, run_dir, *, quiet: bool = False, make_strategy=None):
        self.config = config
        self.quiet = quiet
        self.setup = prepare(config, quiet=quiet, make_strategy=make_strategy)
        self.state = self.setup.state
        self.run = RunDir(run_dir)
        self.keeper = CheckpointKeeper(
            self.state.checkpoint,
            latest_dir=self.run.checkpoints,
            best_dir=self.run.best,
            max_to_keep=config.checkpoint.max_to_keep,
        )
        self.summaries = SummaryLog(self.run.logs, enabled=config.summaries.enabled)
        self.guard = NonFiniteGuard(config.train)
        self.loop = EpochLoop(self.setup, step=self._make_step(), guard=self.guard)
        worker = worker_outputs(config, run_dir, self.state.checkpoint, quiet=quiet, owner=self)
        if worker:  # a non-chief multi-worker process writes only to a temporary directory
            self.run, self.keeper, self.summaries = worker
        self.stop = None
        self.started = False  # run.json says "running": a failure from here on is recorded

    def _make_step(self):
        step = make_step(self.state, self.config)
        if not self.setup.distributed:
            return step
        if self.config.device.jit_compile:
            say(
                f"note: device.jit_compile is not applied under device.strategy: "
                f"{self.config.device.strategy}; the replicated step runs without XLA",
                quiet=self.quiet,
            )
        return ReplicatedStep(step, self.setup.strategy)

    # --- shortcuts a caller (smoke, tests, benchmarks) reads -----------------------------

    @property
    def model(self):
        return self.state.model

    @property
    def dataset(self):
        return self.setup.dataset

    @property
    def step(self):
        return self.state.step

    def evaluate(self, split: str, *, max_batches=None) -> dict:
        return self.loop.evaluate(split, max_batches=max_batches)

    # --- fit -----------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train to the end, resuming from the latest checkpoint; returns the final metrics."""
        self.run.create()
        self.run.check_writable()  # before an epoch of work is done, not after
        with self.run.lock(), self._numeric_checks():
            try:
                return self._fit()
            except Interrupted:
                raise
            except BaseException as error:  # the one place a started run is marked failed
                if self.started:
                    self.run.mark_failed(error)
                if io_error(error):
                    raise TrainingError(f"training stopped: {failure_reason(error)}") from None
                raise

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
        self.run.start(self.config, self.setup, resumed=bool(resumed), quiet=self.quiet)
        started_at = self.run.read_run().get("started_at") or round(time.time(), 3)
        self.run.write_run(started_at=started_at)  # the first session's start (`tftrain runs`)
        self.started = True
        state = self.state
        if resumed:
            say(
                f"resuming from {resumed}: step {int(state.step.numpy())}, "
                f"epoch {int(state.epoch.numpy()) + 1}, batch {int(state.step_in_epoch.numpy())}",
                quiet=self.quiet,
            )
        else:
            self._initialize_weights()
            self._warm_start()
            self.keeper.save(0)  # a last good checkpoint exists from the start (NaN rollback)
        self.early_stopping = EarlyStopping(
            self.config.train.early_stopping, self.model.higher_is_better, state.bad_evaluations
        )
        self.has_valid = bool(self.dataset.num_examples("valid"))
        self.guard.reset()
        stopped_early = False
        started = time.perf_counter()
        with StopSignal() as stop:
            self.stop = self.loop.stop = stop
            try:
                stopped_early = self._train_to_the_end()
            except tf.errors.InvalidArgumentError as error:
                if "Tensor had" not in str(error):  # not a check_numerics report
                    raise
                raise TrainingError(
                    f"train.check_numerics found a NaN or Inf at step "
                    f"{int(state.step.numpy()) + 1}; first op with a NaN or Inf output: "
                    f"{numerics_culprit(str(error))}. The last good checkpoint is "
                    f"{self.keeper.latest_path}."
                ) from None
            finally:
                self.summaries.close()
        results = {}
        for split in self.config.eval.final_splits:
            if self.dataset.num_examples(split):
                results[split] = self.evaluate(split)
        self.run.append_metrics({"event": "final", "step": int(state.step.numpy()), **results})
        if self.summaries.enabled:  # off on non-chief workers: only the chief writes the run
            write_hparams(
                self.run.logs,
                self.config,
                results,
                step=int(state.step.numpy()),
                started=started_at,
            )
        self.run.write_run(
            status="finished",
            step=int(state.step.numpy()),
            epoch=int(state.epoch.numpy()),
            stopped_early=stopped_early,
            skipped_steps=int(self.guard.skipped.numpy()),
            rollbacks=self.guard.rollbacks,
            train_seconds=round(time.perf_counter() - started, 2),
            finished_at=round(time.time(), 3),
            final=results,
        )
        return results

    def _train_to_the_end(self) -> bool:
        """Epoch after epoch until done; returns whether early stopping ended it."""
        state = self.state
        while not self._finished():
            try:
                self._train_one_epoch()
            except RollbackRequested as rollback:
                self._roll_back(rollback.bad_step)
                continue
            if self.stop.requested:
                raise self._interrupt()
            if self._reached_max_steps() and int(state.step_in_epoch.numpy()) != 0:
                self._validate()
                self.keeper.save(int(state.step.numpy()))
                return False
            state.epoch.assign_add(1)
            state.step_in_epoch.assign(0)
            self._validate()
            self.keeper.save(int(state.step.numpy()))
            if self.early_stopping.should_stop:
                say(
                    f"early stopping: no improvement in valid {self.early_stopping.metric} "
                    f"for {self.config.train.early_stopping.patience} evaluations",
                    quiet=self.quiet,
                )
                return True
        return False

    def _initialize_weights(self) -> None:
        """The model's outside initialisation (pretrained embeddings), fresh runs only."""
        report = self.model.initialize_weights()
        if report:
            self.state.start_average_from_weights()
            say(report, quiet=self.quiet)
            self.run.write_run(initialized=report)

    def _warm_start(self) -> None:
        init_from = self.config.train.init_from
        if init_from is None:
            return
        from tftrain.runners.warm_start import warm_start

        report = warm_start(self.model, init_from)
        self.state.start_average_from_weights()
        say(
            f"warm start from {report['checkpoint']}: restored {', '.join(report['restored'])}; "
            f"fresh: {', '.join(report['fresh']) or 'none'}",
            quiet=self.quiet,
        )
        self.run.write_run(warm_start=report)

    def _roll_back(self, bad_step: int) -> None:
        """Restore the last good checkpoint and lower the learning rate (train.on_nan: rollback)."""
        train, guard, state = self.config.train, self.guard, self.state
        if guard.rollbacks >= train.max_rollbacks:
            raise TrainingError(
                f"loss became NaN or Inf at step {bad_step} after {guard.rollbacks} rollbacks "
                f"(train.max_rollbacks={train.max_rollbacks}); stopped. The last good "
                f"checkpoint is {self.keeper.latest_path}."
            )
        multiplier = float(state.schedule.multiplier.numpy()) * train.nan_lr_backoff
        path = self.keeper.restore_latest(warn=lambda text: say(text, quiet=self.quiet))
        state.schedule.multiplier.assign(multiplier)
        guard.rollbacks += 1
        guard.reset()
        say(
            f"warning: NaN or Inf loss at step {bad_step}; rolled back to {path} (step "
            f"{int(state.step.numpy())}) with the learning rate x{multiplier:g} (rollback "
            f"{guard.rollbacks} of {train.max_rollbacks})",
            quiet=self.quiet,
        )

    def _finished(self) -> bool:
        return int(self.state.epoch.numpy()) >= self.config.train.epochs or (
            self._reached_max_steps()
        )

    def _reached_max_steps(self) -> bool:
        limit = self.config.train.max_steps
        return limit is not None and int(self.state.step.numpy()) >= limit

    # --- one epoch, and what happens at its host synchronisations -------------------------

    def _train_one_epoch(self) -> None:
        with self._epoch() as on_sync:
            self.loop.train(on_sync=on_sync)

    @contextlib.contextmanager
    def _epoch(self):
        """The current epoch's progress line and its host synchronisations: the `on_sync`
        callback logs, checkpoints, validates and applies the NaN policy at boundaries."""
        state, spec = self.state, self.setup.spec
        epoch = int(state.epoch.numpy())
        progress = Progress(
            epoch=epoch,
            total=self.setup.steps_per_epoch,
            start=int(state.step_in_epoch.numpy()),
            quiet=self.quiet,
            every=self.config.train.log_every_steps,
            unit=spec.throughput_unit,
        )
        units_per_step = self.setup.batch_size * spec.units_per_example
        window = {"totals": None, "steps": 0, "started": time.perf_counter()}
        last = {"step": int(state.step.numpy())}

        def on_sync(step: int, totals: dict) -> bool:
            self.guard.check(epoch=epoch, last_checkpoint=self.keeper.latest_path, say=say)
            steps = step - last["step"]
            last["step"] = step
            if window["totals"] is None:
                window["totals"] = {k: np.zeros(2) for k in totals}
            for name, value in totals.items():
                window["totals"][name] += value
            window["steps"] += steps
            loss = mean_metrics({"loss": totals["loss"]})["loss"]
            progress.update(steps, steps * units_per_step, {"loss": loss})
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
            yield on_sync
        finally:
            progress.close()
        if window["steps"]:
            self._log_train(window, int(state.step.numpy()), epoch)

    def _log_train(self, window: dict, step: int, epoch: int) -> None:
        if not window["steps"]:
            return
        spec = self.setup.spec
        elapsed = max(time.perf_counter() - window["started"], 1e-9)
        values = {
            **self.model.finalize_metrics(mean_metrics(window["totals"])),
            "learning_rate": self.state.learning_rate,
            "examples_per_second": window["steps"] * self.setup.batch_size / elapsed,
        }
        if spec.throughput_unit != "examples":
            values[f"{spec.throughput_unit}_per_second"] = (
                values["examples_per_second"] * spec.units_per_example
            )
        self.summaries.scalars("train", step, values)
        if self.config.summaries.histograms:
            self.summaries.histograms("train", step, self.state.variables)
        self.run.append_metrics({"split": "train", "step": step, "epoch": epoch + 1, **values})
        window.update(totals=None, steps=0, started=time.perf_counter())

    def _validate(self) -> None:
        if not self.has_valid:
            return
        step = int(self.state.step.numpy())
        metrics = self.evaluate("valid")
        self.summaries.scalars("valid", step, metrics)
        self.summaries.flush()
        per_epoch = self.setup.steps_per_epoch
        epoch = step / per_epoch if per_epoch else None
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
        best = self.state.best
        if better(metrics[name], float("nan") if best is None else best, higher, 0.0):
            self.state.best_value.assign(metrics[name])
            self.state.has_best.assign(True)
            self.keeper.save_best(step, name, metrics[name])

    def _interrupt(self) -> Interrupted:
        step = int(self.state.step.numpy())
        path = self.keeper.save(step)
        self.run.write_run(status="interrupted", step=step)
        return Interrupted(
            f"interrupted at step {step}; saved {path}. Run the same `tftrain fit` command "
            f"again to resume.",
            signal_number=self.stop.signal_number,
        )
