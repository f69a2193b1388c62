"""The model contract: layers from config + data spec, outputs, loss and metric sums, serving.

A model knows nothing of epochs, checkpoints, summaries or devices. The training loop asks it
for `forward` and `losses_and_metrics`; everything else is the loop's business.

Metrics are returned as (sum, count) pairs so the loop can add them over any number of batches
(and replicas) and divide once: the epoch's loss is then the exact mean over all examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import click

from tftrain.data.base import DataSpec, apply_transform
from tftrain.errors import ConfigError
from tftrain.lazy import tf


@dataclass(frozen=True)
class PredictOption:
    """An option a model family adds to `tftrain predict`; the CLI reads them from the models."""

    flag: str  # "--beam-width"
    help: str
    type: Any = str  # a click parameter type: str, int, float, click.IntRange(min=1), ...
    default: Any = None
    nargs: int = 1
    metavar: str | None = None

    @property
    def key(self) -> str:
        """The name the model reads it by: "--beam-width" -> "beam_width"."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class PredictRequest:
    """What `tftrain predict` was asked: input paths, and the model's own options by key."""

    inputs: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 1024

    def __getitem__(self, key: str):
        return self.options[key]


# Keras names a config may use, checked when the config is validated rather than when the
# network is built (after the data has loaded).
Activation = Literal[
    "relu", "tanh", "sigmoid", "elu", "selu", "gelu", "silu", "swish", "softplus", "softsign",
    "linear", "leaky_relu", "relu6", "mish", "hard_sigmoid", "hard_silu", "exponential",
]  # fmt: skip
Initializer = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "zeros", "ones", "random_normal", "random_uniform", "truncated_normal",
    "orthogonal", "variance_scaling",
]  # fmt: skip


@dataclass(frozen=True)
class ModelConfig:
    """Keys every model accepts."""

    type: str = ""


class Model:
    """Base of every model; subclasses set `Config`, `description`, `tasks` and the hooks."""

    Config = ModelConfig
    description = ""
    name = ""
    # The data tasks (DataSpec.task) this model learns; any other is refused in one place.
    tasks: frozenset[str] = frozenset()
    # Options this family adds to `tftrain predict` (the base reads feature files: --top-k).
    predict_options: tuple[PredictOption, ...] = (
        PredictOption("--top-k", "the k most likely classes", click.IntRange(min=1), 1),
    )
    # Metrics where larger is better (used by best-checkpoint and early-stopping "auto" mode).
    higher_is_better = frozenset({"accuracy"})
    # Models whose state spans batches need every batch the same size.
    needs_fixed_batch = False

    def __init__(self, config, spec: DataSpec):
        self.config = config
        self.spec = spec
        self.check_data(spec)
        self.network = self.build()

    def check_data(self, spec: DataSpec) -> None:
        """Refuse data of a task this model does not learn, naming the datasets that fit."""
        if spec.task in self.tasks:
            return
        from tftrain.registry import datasets, models

        fitting = [name for name, cls in datasets.items() if cls.tasks & self.tasks]
        learners = [name for name, cls in models.items() if spec.task in cls.tasks]
        hint = f"; models for {spec.task} data: {', '.join(learners)}" if learners else ""
        raise ConfigError(
            f"config error: model '{self.name}' learns {' or '.join(sorted(self.tasks))} data "
            f"(data.type: {', '.join(fitting)}), but this dataset gives {spec.task} data{hint}"
        )

    @classmethod
    def describe(cls, overrides=()) -> str:
        """What `tftrain models NAME [--set KEY=VALUE ...]` prints (e.g. a layer table)."""
        return f"{cls.name}: {cls.description}"

    # --- what subclasses implement ------------------------------------------------------

    def build(self):
        """Create and return the Keras model holding every variable."""
        raise NotImplementedError

    def forward(self, features, *, training: bool, state=()):
        """Map a batch of (transformed) features to outputs; returns (outputs, new state)."""
        return self.network(features, training=training), state

    def losses_and_metrics(self, labels, outputs) -> dict:
        """{"loss": (sum, count), other metrics: (sum, count)} for one batch."""
        raise NotImplementedError

    def serving_outputs(self, outputs) -> dict:
        """Named tensors the exported signature returns."""
        raise NotImplementedError

    # --- optional hooks ------------------------------------------------------------------

    def initial_state(self, batch_size: int):
        """State carried from batch to batch within an epoch (empty for stateless models)."""
        return ()

    def regularized_variables(self) -> list:
        """Variables L2 applies to: weight matrices, not biases (as in the tutorials)."""
        return [v for v in self.network.trainable_variables if len(v.shape) > 1]

    def initialize_weights(self) -> str | None:
        """Set weights from an outside source before a fresh run's first step (pretrained
        embeddings); returns a line to report, or None. Not called on resume or restore."""
        return None

    def in_place_update(self, conflicts: list[str]) -> bool:
        """Whether the model applies its own training update (`train_in_place`) instead of
        the loop's gradient and optimizer; `conflicts` names the train settings that need
        gradients. Default: no."""
        return False

    def train_in_place(self, features, learning_rate) -> dict:
        """Update the variables from one batch at `learning_rate`; returns the metric sums
        ({"loss": (sum, count), ...}) of the batch before the update."""
        raise NotImplementedError

    def finalize_metrics(self, metrics: dict) -> dict:
        """Derived metrics (e.g. perplexity from loss) after sums are divided."""
        return metrics

    def reference_metrics(self, train_arrays, eval_arrays) -> dict:
        """Figures computed from in-memory arrays, e.g. a closed-form optimum."""
        return {}

    def evaluate_extra(
        self, dataset, split: str, *, plot: str | None = None, max_examples: int | None = None
    ) -> dict:
        """Figures `tftrain eval` reports beside the loop's metrics (BLEU from decoding, a
        closed-form optimum, ...). `plot` is a PNG path the model may draw into, if asked;
        `max_examples` (from eval.max_batches) caps slow extras such as decoding."""
        train_arrays, eval_arrays = dataset.arrays("train"), dataset.arrays(split)
        if train_arrays is None or eval_arrays is None:
            return {}
        return self.reference_metrics(train_arrays, eval_arrays)

    def predict(self, request: PredictRequest):
        """Answer `tftrain predict`: a list of row dicts (printed as CSV/JSONL) or plain text.

        The default reads raw feature files (CSV/NPZ/NPY) and runs serving_default on them.
        """
        import numpy as np

        from tftrain.data.features import read_features

        if not request.inputs:
            raise ConfigError("usage error: give one or more input files (CSV, NPZ or NPY)")
        features = np.concatenate([read_features(path, self.spec) for path in request.inputs])
        serve = self.serving_functions()["serving_default"][1]
        size = request.batch_size
        parts = [serve(features=features[i : i + size]) for i in range(0, len(features), size)]
        outputs = {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in parts[0]}
        return prediction_rows(outputs, self.spec, top_k=request["top_k"])

    def export_formats(self) -> dict:
        """Model-specific export formats: {name: writer(directory, context) -> report dict}."""
        return {}

    # --- serving -------------------------------------------------------------------------

    def serving_signature(self):
        """The raw input the exported model takes: a float batch of the data's input shape."""
        return tf.TensorSpec([None, *self.spec.input_shape], tf.float32, name="features")

    def serve(self, features) -> dict:
        """Raw features (as the data files hold them) -> serving outputs."""
        outputs, _ = self.forward(apply_transform(features, self.spec), training=False)
        return self.serving_outputs(outputs)

    def serving_functions(self) -> dict:
        """{signature name: (input signature, function)}; "serving_default" is required."""
        return {"serving_default": ([self.serving_signature()], self.serve)}

    def export_examples(self, dataset, count: int) -> dict:
        """Keyword inputs for serving_default, used to check an export against this model."""
        import numpy as np

        for split in ("test", "valid", "train"):
            arrays = dataset.arrays(split)
            if arrays is not None and len(arrays[0]):
                return {"features": np.asarray(arrays[0][:count], dtype=np.float32)}
        raise NotImplementedError(f"{type(self).__name__} must implement export_examples")


def stacked_sums(metrics: dict) -> dict:
    """{name: (sum, count)} -> {name: float32 [sum, count]}, the form the loop adds up."""
    return {
        name: tf.stack([tf.cast(total, tf.float32), tf.cast(count, tf.float32)])
        for name, (total, count) in metrics.items()
    }


def classification_metrics(labels, logits, *, class_weights=None) -> dict:
    """Cross-entropy and accuracy sums for integer labels and logits.

    `class_weights` (one per class, e.g. data.class_weights: balanced) scale each example's
    cross-entropy; they average to 1 over the training set, so the loss keeps its scale.
    """
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if class_weights:
        losses = losses * tf.gather(tf.constant(class_weights, losses.dtype), labels)
    correct = tf.cast(
        tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32
    )
    count = tf.cast(tf.size(labels), tf.float32)
    return {"loss": (tf.reduce_sum(losses), count), "accuracy": (tf.reduce_sum(correct), count)}


def regression_metrics(targets, predictions) -> dict:
    """MSE (the loss), and MAE sums over every predicted value."""
    targets = tf.cast(tf.reshape(targets, tf.shape(predictions)), predictions.dtype)
    errors = predictions - targets
    count = tf.cast(tf.size(errors), tf.float32)
    squared = tf.reduce_sum(tf.square(errors))
    return {
        "loss": (squared, count),
        "mse": (squared, count),
        "mae": (tf.reduce_sum(tf.abs(errors)), count),
    }


def classification_outputs(logits) -> dict:
    return {
        "probabilities": tf.nn.softmax(logits, axis=-1),
        "class_ids": tf.argmax(logits, axis=-1, output_type=tf.int32),
    }


def prediction_rows(outputs: dict, spec: DataSpec, *, top_k: int = 1) -> list[dict]:
    """Serving outputs -> one dict per example (class and probability, or predicted values)."""
    import numpy as np

    if "probabilities" in outputs:
        names = spec.class_names
        rows = []
        for probabilities in outputs["probabilities"]:
            best = np.argsort(-probabilities)[:top_k]
            row = {}
            for rank, class_id in enumerate(best, start=1):
                suffix = "" if top_k == 1 else f"_{rank}"
                row[f"class_id{suffix}"] = int(class_id)
                if names:
                    row[f"class_name{suffix}"] = names[int(class_id)]
                row[f"probability{suffix}"] = round(float(probabilities[class_id]), 6)
            rows.append(row)
        return rows
    predictions = np.asarray(outputs["predictions"])
    predictions = predictions.reshape(len(predictions), -1)
    if predictions.shape[1] == 1:
        return [{"prediction": float(p[0])} for p in predictions]
    return [{f"prediction_{i}": float(v) for i, v in enumerate(p)} for p in predictions]
