"""One pass over a split, compiled: `run_epoch` for every model, training or evaluating.

The step runs inside a `tf.function` loop: `train.steps_per_loop` steps per call, fewer up to
the next log, checkpoint or validation boundary. The host reads values back only at those
boundaries, so small models are not slowed by a round trip per step. Metrics travel as
(sum, count) pairs and are divided once, so an epoch's loss is the exact mean over examples.
"""

from __future__ import annotations

import functools

import numpy as np

from tftrain.lazy import tf
from tftrain.models.base import stacked_sums
from tftrain.runners import precision
from tftrain.runners.distributed import distribute_epoch

ALL_STEPS = 2**31 - 1


def mean_metrics(totals: dict) -> dict:
    """{name: [sum, count]} -> {name: sum / count}."""
    return {name: float(s / c) if c else float("nan") for name, (s, c) in totals.items()}


def loop_pipeline_options():
    """tf.data options for the loop's per-epoch iterators: autotuning off.

    With autotuning on, deleting an epoch's iterator waits for tf.data's model-optimisation
    thread (0.4-3 s at the end of most seq2seq epochs on 2 cores). Without it, AUTOTUNE
    parallelism is the core count and prefetch buffers grow as the consumer waits.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def graph_callable(step):
    """`step` as a function graph code can call: as it is when it has no Python control flow
    on tensors (`graph_ready`) or is a `tf.function`, else converted by autograph."""
    if (
        step is None
        or getattr(step, "graph_ready", False)
        or hasattr(step, "get_concrete_function")
    ):
        return step
    converted = tf.autograph.to_graph(type(step).__call__)
    return functools.partial(converted, step)


class EpochLoop:
    """Compiled training and evaluation passes over a run's data."""

    def __init__(self, setup, *, step=None, guard=None):
        self.setup = setup
        self.config = setup.config
        self.model = setup.model
        self.state = setup.state
        self.step = step  # the TrainStep (or replicated step) for training passes
        self.guard = guard
        self.stop = None  # the fit loop's StopSignal, while training
        self.metric_names = self._probe_metric_names()
        self._train_steps = tf.function(self._train_steps_python, autograph=False)
        self._eval_steps = tf.function(self._eval_steps_python)

    def _probe_metric_names(self) -> list[str]:
        """Run one batch eagerly to learn which metrics the model reports."""
        # The training split holds at least one full batch (checked at setup); valid may not.
        data = self.setup.dataset.batches("train", self.setup.batch_size, drop_remainder=True)
        features, labels = next(iter(data))
        outputs, _ = self.model.forward(
            features, training=False, state=self.model.initial_state(self.setup.batch_size)
        )
        names = sorted(self.model.losses_and_metrics(labels, precision.as_float32(outputs)))
        if "loss" not in names:
            raise TypeError(f"{type(self.model).__name__}.losses_and_metrics must return 'loss'")
        names.remove("loss")
        return ["loss", *names]

    def _zero_totals(self):
        return {name: tf.zeros([2], tf.float32) for name in self.metric_names}

    # --- the compiled loops --------------------------------------------------------------

    def _train_steps_python(self, iterator, state, num_steps, totals):
        """Up to `num_steps` steps (fewer at the end of data); adds their metrics to `totals`.

        Every batch counts as a step, applied or (being non-finite) skipped, so `step` and
        `step_in_epoch` are also the position in the data. The loop is written with
        `tf.while_loop` and `tf.cond`, traced without autograph: converting it cost about
        1.5 s per fit. Only a step with Python control flow goes through autograph.
        """
        step = graph_callable(self.step)

        def body(done, more, state, totals):
            optional = iterator.get_next_as_optional()

            def train():
                features, labels = optional.get_value()
                sums, new_state, finite = step(features, labels, state)
                self.state.step.assign_add(1)
                self.state.step_in_epoch.assign_add(1)
                self.guard.record(finite, self.state.step)
                added = {
                    name: tf.where(finite, totals[name] + sums[name], totals[name])
                    for name in self.metric_names
                }
                return done + 1, tf.constant(True), new_state, added

            return tf.cond(
                optional.has_value(), train, lambda: (done, tf.constant(False), state, totals)
            )

        done, _, state, totals = tf.while_loop(
            lambda done, more, state, totals: more & (done < num_steps),
            body,
            (tf.constant(0), tf.constant(True), state, totals),
        )
        return totals, state, done

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

    # --- passes --------------------------------------------------------------------------

    def run_epoch(self, split: str, training: bool, *, on_sync=None, max_batches=None) -> dict:
        """One pass over `split`: trains (the rest of the current epoch) if `training`, else
        evaluates. Returns the pass's mean metrics."""
        if not training:
            return self.evaluate(split, max_batches=max_batches)
        if split != "train":
            raise ValueError(f"training passes run over the train split, not {split!r}")
        return self.train(on_sync=on_sync or (lambda step, totals: True))

    def evaluate(self, split: str, *, max_batches=None) -> dict:
        """Mean metrics of `split` with the evaluation weights (the EMA, if enabled)."""
        setup = self.setup
        max_batches = max_batches or self.config.eval.max_batches
        data = setup.dataset.batches(
            split, setup.eval_batch_size, drop_remainder=setup.drop_remainder
        ).with_options(loop_pipeline_options())
        state = self.model.initial_state(setup.eval_batch_size)
        with self.state.evaluation_weights():
            chunk, _, _ = self._eval_steps(iter(data), state, tf.constant(max_batches or ALL_STEPS))
        totals = {name: value.numpy() for name, value in chunk.items()}
        return self.model.finalize_metrics(mean_metrics(totals))

    def train(self, *, on_sync) -> dict:
        """Train on the rest of the current epoch, from `step_in_epoch`.

        At each host synchronisation (log, checkpoint and validation boundaries, a stop
        request, the end of the epoch) it calls `on_sync(step, totals)` with the metric sums
        since the previous one; `on_sync` returns False to end the epoch early.
        """
        setup, run = self.setup, self.state
        epoch = int(run.epoch.numpy())
        skip = int(run.step_in_epoch.numpy())
        data = setup.dataset.training_batches(
            "train",
            setup.batch_size,
            epoch=epoch,
            skip=skip,
            shuffle=self.config.train.shuffle,
            drop_remainder=setup.drop_remainder,
        ).with_options(loop_pipeline_options())
        state = self.model.initial_state(setup.batch_size)
        if setup.distributed:
            data, state = distribute_epoch(setup.strategy, self.model, data, setup.batch_size)
        iterator = iter(data)
        totals = {name: np.zeros(2) for name in self.metric_names}
        step = int(run.step.numpy())
        in_epoch = skip
        window = self._zero_totals()
        per_epoch = setup.steps_per_epoch
        while True:
            size = self.next_chunk_size(step)
            if per_epoch:
                size = min(size, per_epoch - in_epoch)
            if size <= 0:
                break
            window, state, done = self._train_steps(iterator, state, tf.constant(size), window)
            # The host only waits for the device when it must: at boundaries, or every call
            # when the epoch's length is unknown (streamed data).
            done = size if per_epoch else int(done)
            step += done
            in_epoch += done
            ended = done < size or (per_epoch and in_epoch >= per_epoch)
            stopping = self.stop is not None and self.stop.requested
            if ended or stopping or self._is_boundary(step):
                step = int(run.step.numpy())
                in_epoch = int(run.step_in_epoch.numpy())
                synced = {name: value.numpy() for name, value in window.items()}
                window = self._zero_totals()
                for name, value in synced.items():
                    totals[name] += value
                if not on_sync(step, synced) or ended:
                    break
        return self.model.finalize_metrics(mean_metrics(totals))

    # --- where the host must look --------------------------------------------------------

    @property
    def max_steps(self) -> int | None:
        return self.config.train.max_steps

    def _intervals(self) -> list[int]:
        train, checkpoint = self.config.train, self.config.checkpoint
        every = (train.log_every_steps, checkpoint.every_steps, train.validate_every_steps)
        return [interval for interval in every if interval]

    def _is_boundary(self, step: int) -> bool:
        return any(step % interval == 0 for interval in self._intervals()) or (
            self.max_steps is not None and step >= self.max_steps
        )

    def next_chunk_size(self, step: int) -> int:
        """Steps until the next log, checkpoint, validation or the end of training."""
        size = self.config.train.steps_per_loop
        for interval in self._intervals():
            size = min(size, interval - step % interval)
        if self.max_steps is not None:
            size = min(size, self.max_steps - step)
        return max(size, 0)
