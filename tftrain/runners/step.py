"""One training step, written once: loss (+ L2), gradients, the finite check, the update.

`TrainStep` is called by the compiled loop on one device. Under a `tf.distribute` strategy
the same pieces run per replica (`runners/distributed.py` for mirrored / multi-worker, the
parameter-server loop): `objective_and_gradients` with the global example count, `is_finite`
reduced over replicas, `apply`. Each replica's loss is its loss sum divided by the *global*
count, so the gradients summed over replicas equal the single-device gradient of the batch.
"""

from __future__ import annotations

from tftrain.lazy import tf
from tftrain.models.base import stacked_sums
from tftrain.runners import precision


class TrainStep:
    """Forward, backward and (if finite) update on one batch, for a `RunState`."""

    def __init__(self, state, train):
        self.state = state
        self.train = train
        self.model = state.model
        self.scaled = state.precision == "mixed_float16"  # float16: dynamic loss scaling

    # --- the pieces every strategy shares -----------------------------------------------

    def objective_and_gradients(self, features, labels, rng_state, *, context=None):
        """(objective, gradients, metric sums, new state) for this device's batch.

        With a replica `context`, the loss is divided by the global example count and the L2
        penalty by the number of replicas, so that summing over replicas gives the whole.
        """
        model, train, variables = self.model, self.train, self.state.variables
        with tf.GradientTape() as tape:
            outputs, new_state = model.forward(features, training=True, state=rng_state)
            metrics = model.losses_and_metrics(labels, precision.as_float32(outputs))
            loss_sum, count = metrics["loss"]
            count = tf.cast(count, tf.float32)
            replicas = 1
            if context is not None:
                count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
                replicas = context.num_replicas_in_sync
            objective = tf.cast(loss_sum, tf.float32) / tf.maximum(count, 1.0)
            if train.l2:
                penalty = tf.add_n([tf.nn.l2_loss(w) for w in model.regularized_variables()])
                objective += train.l2 * penalty / replicas
            loss = self.state.optimizer.scale_loss(objective) if self.scaled else objective
        gradients = tape.gradient(loss, variables)
        # Sparse (IndexedSlices) gradients of embedding lookups stay sparse on one device, so
        # the optimizer scatters only the rows a batch touched (word2vec); accumulation and
        # all-reduce need them dense.
        keep_sparse = context is None and self.state.accumulator is None
        gradients = [
            tf.zeros_like(v)
            if g is None
            else g
            if keep_sparse and isinstance(g, tf.IndexedSlices)
            else tf.convert_to_tensor(g)
            for g, v in zip(gradients, variables, strict=True)
        ]
        return objective, gradients, stacked_sums(metrics), new_state

    def is_finite(self, objective, gradients):
        """Whether the update may be applied: a finite loss and gradient norm.

        Under float16 loss scaling the optimizer skips overflowing steps itself (and lowers
        the scale), so only the loss is checked.
        """
        if self.scaled:
            return tf.math.is_finite(objective)
        return tf.logical_and(
            tf.math.is_finite(objective), tf.math.is_finite(tf.linalg.global_norm(gradients))
        )

    def clip(self, gradients):
        if self.train.clip_grad_norm:
            gradients, _ = tf.clip_by_global_norm(gradients, self.train.clip_grad_norm)
        return gradients

    def apply(self, gradients, *, clipped: bool = False) -> None:
        """Clip (unless done), then accumulate or apply; update the moving average."""
        state = self.state
        if state.accumulator is not None:
            state.accumulator.add(gradients)
            if state.accumulator.ready():
                self._update(state.accumulator.mean(), clipped)
                state.accumulator.reset()
        else:
            self._update(gradients, clipped)

    def _update(self, gradients, clipped: bool) -> None:
        gradients = gradients if clipped else self.clip(gradients)
        self.state.optimizer.apply_gradients(zip(gradients, self.state.variables, strict=True))
        self.average()

    def average(self) -> None:
        if self.state.averager is not None:
            self.state.averager.update(self.state.base_optimizer.iterations)

    # --- one device ---------------------------------------------------------------------

    def __call__(self, features, labels, rng_state):
        """Returns (metric sums, new state, finite); a non-finite update is never applied."""
        objective, gradients, sums, new_state = self.objective_and_gradients(
            features, labels, rng_state
        )
        finite = self.is_finite(objective, gradients)
        if finite:
            self.apply(gradients)
        return sums, new_state, finite


class InPlaceStep(TrainStep):
    """For a model that updates its own variables (word2vec's fused kernel) at the schedule's
    learning rate; the optimizer only counts the step, so schedules, rollback and resume work
    as usual."""

    graph_ready = True  # no Python control flow on tensors: the loop calls it unconverted

    def __call__(self, features, labels, rng_state):
        optimizer = self.state.base_optimizer
        metrics = self.model.train_in_place(features, self.state.schedule(optimizer.iterations))
        optimizer.iterations.assign_add(1)
        self.average()
        finite = tf.math.is_finite(metrics["loss"][0])
        return stacked_sums(metrics), rng_state, finite


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


def make_step(state, config, *, for_training: bool = True):
    """The step the loop runs: the model's own in-place update where it can, else gradients."""
    if for_training and state.model.in_place_update(gradient_needs(config)):
        return InPlaceStep(state, config.train)
    step = TrainStep(state, config.train)
    if config.device.jit_compile and config.device.strategy == "default":
        return tf.function(step, jit_compile=True)
    return step
