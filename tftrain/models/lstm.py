"""Recurrent networks: the PTB word language model, a sequence classifier and a regressor.

The task follows the data (`model.task: auto`): `language_model` is the TensorFlow PTB
tutorial's model, whose state (h, c per layer) is declared by `initial_state` and returned by
`forward`, so the shared loop carries it from batch to batch within an epoch (truncated
back-propagation through time) and resets it each epoch; `classification` maps a sequence of
vectors (MNIST read row by row) or of token ids (padded with 0, masked) to a label;
`regression` maps a window of a series to its next value(s) (for a series file, `eval` puts
the naive forecasts' errors beside its own and `predict` forecasts past the file's end). The
networks are in `lstm_networks.py`. The layers keep Keras' fast cuDNN-compatible configuration
(tanh/sigmoid, no recurrent dropout, not unrolled); a setting that rules that kernel out is
warned about.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import click
import numpy as np

from tftrain.data.base import DataSpec, apply_transform
from tftrain.data.forecast_baselines import scores
from tftrain.errors import ConfigError
from tftrain.lazy import tf
from tftrain.models.base import (
    Model,
    ModelConfig,
    PredictOption,
    classification_metrics,
    classification_outputs,
    regression_metrics,
)
from tftrain.models.lstm_networks import language_model_network, sequence_network
from tftrain.models.text_networks import check_embeddings, initialize_embeddings
from tftrain.models.text_serving import (
    TEXT_OPTION,
    attach_table,
    is_text,
    predict_texts,
    refuse_text_option,
    text_export_examples,
    text_serving_functions,
)
from tftrain.plots import draw_series
from tftrain.registry import models
from tftrain.schema import FieldError, limits


@dataclass(frozen=True)
class LstmConfig(ModelConfig):
    """Keys of the `lstm` model; `preset: small|medium|large` fills the tutorial's values."""

    preset: str | None = None
    task: Literal["auto", "language_model", "classification", "regression"] = "auto"
    cell: Literal["lstm", "gru"] = "lstm"
    num_layers: int = field(default=2, metadata=limits(ge=1))
    hidden_size: int = field(default=200, metadata=limits(ge=1))
    embedding_size: int | None = field(default=None, metadata=limits(ge=1))  # default hidden
    embedding_dim: int | None = field(default=None, metadata=limits(ge=1))  # = embedding_size
    embeddings: dict[str, Any] | None = None  # {from: RUN_DIR | vectors file, trainable: bool}
    dropout: float = field(default=0.0, metadata=limits(ge=0, lt=1))  # 1 - keep_prob
    recurrent_dropout: float = field(default=0.0, metadata=limits(ge=0, lt=1))  # slow kernel
    init_scale: float | None = field(default=None, metadata=limits(gt=0))  # uniform +-scale
    unit_forget_bias: bool = True  # False = the tutorial's forget_bias 0.0
    tie_embeddings: bool = False  # language_model: softmax weights = embedding matrix
    carry_state: bool = True  # language_model: pass the state from batch to batch
    bidirectional: bool = False  # classification / regression only
    inputs: Literal["auto", "vectors", "tokens"] = "auto"  # tokens if the data has a vocabulary
    vocab_size: int | None = field(default=None, metadata=limits(ge=2))  # tokens without one
    unroll: bool = False  # slow kernel; only for very short sequences

    # Zaremba et al. (2014) / the TensorFlow PTB tutorial's SmallConfig, MediumConfig and
    # LargeConfig. Their training keys (batch 20, lr, max_grad_norm, decay) are train.* keys,
    # scaled to tftrain's per-word loss in configs/lstm_ptb_*.yaml; num_steps is data.num_steps.
    PRESETS = {
        "small": {
            "task": "language_model",
            "num_layers": 2,
            "hidden_size": 200,
            "init_scale": 0.1,
            "dropout": 0.0,
            "unit_forget_bias": False,
        },
        "medium": {
            "task": "language_model",
            "num_layers": 2,
            "hidden_size": 650,
            "init_scale": 0.05,
            "dropout": 0.5,
            "unit_forget_bias": False,
        },
        "large": {
            "task": "language_model",
            "num_layers": 2,
            "hidden_size": 1500,
            "init_scale": 0.04,
            "dropout": 0.65,
            "unit_forget_bias": False,
        },
    }

    def __post_init__(self):
        check_embeddings(self.embeddings)
        if self.embedding_dim and self.embedding_size not in (None, self.embedding_dim):
            raise FieldError("embedding_dim", "and embedding_size differ; set only one")
        if self.bidirectional and self.task == "language_model":
            raise FieldError(
                "bidirectional", "cannot be used by a language model (it would see the future)"
            )


def fast_kernel_blockers(config) -> list[str]:
    """Settings that rule out the fused cuDNN kernel on GPUs."""
    blockers = []
    if config.recurrent_dropout:
        blockers.append(f"recurrent_dropout={config.recurrent_dropout}")
    if config.unroll:
        blockers.append("unroll=true")
    return blockers


@models.register("lstm")
class Lstm(Model):
    """Stacked LSTM/GRU: word language model with carried state, sequence classifier, regressor."""

    Config = LstmConfig
    description = "stacked LSTM/GRU: language model (carried state), sequence classifier, regressor"
    higher_is_better = frozenset({"accuracy"})
    tasks = frozenset({"language_model", "classification", "regression"})
    predict_options = (
        *Model.predict_options,
        TEXT_OPTION,
        PredictOption("--prime", "text to start generating from"),
        PredictOption("--words", "words to generate", click.IntRange(min=1), 30),
        PredictOption(
            "--temperature",
            "sampling temperature (0: the most likely word)",
            click.FloatRange(min=0),
            1.0,
        ),
    )

    def __init__(self, config, spec: DataSpec):
        task = spec.task
        if config.task not in ("auto", task):
            raise ConfigError(
                f"config error: 'model.task' is {config.task} but the dataset gives {task} data; "
                f"set model.task to {task} or auto"
            )
        self.task = task
        blockers = fast_kernel_blockers(config)
        if blockers:
            warnings.warn(
                f"lstm: {', '.join(blockers)} rules out the fast cuDNN kernel on GPUs "
                f"(the generic, much slower loop will run)",
                stacklevel=2,
            )
        if config.tie_embeddings and task != "language_model":
            raise ConfigError("config error: 'model.tie_embeddings' is for language models only")
        self.needs_fixed_batch = task == "language_model" and config.carry_state
        super().__init__(config, spec)

    # --- building ------------------------------------------------------------------------

    @property
    def state_parts(self) -> int:
        return 2 if self.config.cell == "lstm" else 1

    def build(self):
        if self.task == "language_model":
            return language_model_network(self.config, self.spec.num_classes, self.zero_state)
        network = sequence_network(
            self.config, self.spec, task=self.task, tokens=self.uses_tokens()
        )
        return attach_table(network, self.spec) if is_text(self.spec) else network

    def initialize_weights(self) -> str | None:
        if self.task == "language_model" or not self.uses_tokens():
            return None
        return initialize_embeddings(self.network, self.spec, self.config)

    def uses_tokens(self) -> bool:
        if self.config.inputs == "auto":
            return bool(self.spec.vocabulary) or self.spec.input_dtype.startswith("int")
        return self.config.inputs == "tokens"

    # --- the state the loop carries ------------------------------------------------------

    def zero_state(self, batch_size):
        zeros = tf.zeros(tf.stack([batch_size, self.config.hidden_size]), tf.float32)
        return tuple(
            tuple(zeros for _ in range(self.state_parts)) for _ in range(self.config.num_layers)
        )

    def initial_state(self, batch_size: int):
        if self.task != "language_model" or not self.config.carry_state:
            return ()
        return self.zero_state(batch_size)

    def forward(self, features, *, training: bool, state=()):
        if self.task != "language_model":
            return self.network(features, training=training), state
        ids = tf.cast(features, tf.int32)
        start = state if state else self.zero_state(tf.shape(ids)[0])
        logits, new_state = self.network(ids, start, training=training)
        return logits, (new_state if state else ())

    # --- loss and metrics ----------------------------------------------------------------

    def losses_and_metrics(self, labels, outputs):
        if self.task == "regression":
            return regression_metrics(labels, outputs)
        if self.task == "classification":
            weights = self.spec.extra.get("class_weights")
            return classification_metrics(labels, outputs, class_weights=weights)
        vocab = tf.shape(outputs)[-1]
        return classification_metrics(tf.reshape(labels, [-1]), tf.reshape(outputs, [-1, vocab]))

    def finalize_metrics(self, metrics: dict) -> dict:
        if self.task == "language_model" and "loss" in metrics:
            loss = metrics["loss"]
            metrics["perplexity"] = math.exp(min(loss, 700.0)) if math.isfinite(loss) else loss
        return metrics

    # --- serving -------------------------------------------------------------------------

    def pack_state(self, state):
        """Nested (layer, part) tensors -> one [batch, layers, parts, hidden] tensor."""
        return tf.stack([tf.stack(list(parts), axis=1) for parts in state], axis=1)

    def unpack_state(self, packed):
        return tuple(
            tuple(packed[:, layer, part] for part in range(self.state_parts))
            for layer in range(self.config.num_layers)
        )

    def serving_functions(self) -> dict:
        if is_text(self.spec):
            return text_serving_functions(self)
        if self.task != "language_model":
            return super().serving_functions()
        signature = [
            tf.TensorSpec([None, None], tf.int32, name="token_ids"),
            tf.TensorSpec(
                [None, self.config.num_layers, self.state_parts, self.config.hidden_size],
                tf.float32,
                name="state",
            ),
        ]

        def serve(token_ids, state):
            ids = tf.convert_to_tensor(token_ids, tf.int32)
            packed = tf.convert_to_tensor(state, tf.float32)
            logits, new_state = self.network(ids, self.unpack_state(packed), training=False)
            return {"logits": logits, "state": self.pack_state(new_state)}

        return {"serving_default": (signature, serve)}

    def serving_outputs(self, outputs) -> dict:
        if self.task == "classification":
            return classification_outputs(outputs)
        return {"predictions": outputs}

    def export_examples(self, dataset, count: int) -> dict:
        if is_text(self.spec):
            return text_export_examples(dataset, count)
        if self.task != "language_model":
            return super().export_examples(dataset, count)
        from tftrain.data.text import producer_layout

        split = next(s for s in ("test", "valid", "train") if dataset.num_examples(s))
        num_steps = dataset.num_steps(split)
        x, _ = producer_layout(dataset.ids[split], count, num_steps)
        rng = np.random.default_rng(0)
        shape = (count, self.config.num_layers, self.state_parts, self.config.hidden_size)
        return {
            "token_ids": x[0].astype(np.int32),
            "state": rng.uniform(-0.5, 0.5, shape).astype(np.float32),
        }

    # --- tftrain eval extras -------------------------------------------------------------

    def evaluate_extra(
        self, dataset, split: str, *, plot: str | None = None, max_examples: int | None = None
    ) -> dict:
        if self.task == "language_model":
            optimum = getattr(dataset, "optimal_perplexity", None)
            return {"optimal_perplexity": optimum(split)} if optimum else {}
        if self.task == "regression":
            return self.regression_extra(dataset, split, plot)
        return {}

    def regression_extra(self, dataset, split: str, plot: str | None) -> dict:
        arrays = dataset.arrays(split)
        if arrays is None:
            return {}
        x, y = arrays
        predictions = np.concatenate(
            [
                np.asarray(
                    self.forward(apply_transform(x[i : i + 1024], self.spec), training=False)[0]
                )
                for i in range(0, len(x), 1024)
            ]
        )
        truth = np.asarray(y, dtype=np.float32).reshape(predictions.shape)
        naive = getattr(dataset, "baseline_forecasts", None)
        if naive is None:  # the built-in sine: persistence (next value = the window's last)
            last = np.asarray(x, dtype=np.float32).reshape(len(x), -1)[:, -1:]
            extra = {"persistence_mse": float(np.mean((truth - last) ** 2))}
            times = None
        else:  # a series file: errors in its units, beside the naive forecasts'
            extra = scores(truth, {"": predictions, **naive(split)})
            times = dataset.forecast_times(split)
        if plot:
            title = f"{split}: {'next value' if truth.shape[1] == 1 else 'first forecast step'}"
            name = self.spec.extra.get("series", {}).get("targets", ["value"])[0]
            draw_series(plot, truth[:, 0], predictions[:, 0], title=title, times=times, ylabel=name)
            extra["plot"] = str(plot)
        return extra

    # --- tftrain predict -----------------------------------------------------------------

    def predict(self, request):
        if is_text(self.spec):
            return predict_texts(self, request)
        refuse_text_option(request)
        if self.task == "language_model":
            return self.generate_text(request)
        if "series" in self.spec.extra:
            return self.forecast(request)
        return super().predict(request)

    def forecast(self, request) -> list[dict]:
        """The `horizon` steps after the end of a series file, one row per step."""
        from tftrain.data.series_csv import forecast_input, forecast_rows

        if len(request.inputs) != 1:
            raise ConfigError("usage error: give one series CSV file; the forecast follows its end")
        features, times = forecast_input(request.inputs[0], self.spec)
        predictions = np.asarray(self.serve(features)["predictions"])[0]
        return forecast_rows(predictions, self.spec, times)

    def generate_text(self, request) -> str:
        """Sample `--words` words after `--prime` (temperature 0: the most likely word)."""
        vocabulary = self.spec.vocabulary
        index = {word: i for i, word in enumerate(vocabulary)}
        eos, unk = self.spec.extra.get("eos"), self.spec.extra.get("unk")
        prime = (request["prime"] or "").split()
        unknown = [w for w in prime if w not in index]
        if unknown and unk is None:
            raise ConfigError(
                f"usage error: --prime words not in the vocabulary: {' '.join(unknown)}"
            )
        ids = [index.get(w, index.get(unk)) for w in prime] or [index[eos] if eos else 0]
        rng = np.random.default_rng(0)
        temperature = request["temperature"]
        logits, state = self.network(
            tf.constant([ids], tf.int32), self.zero_state(1), training=False
        )
        generated = []
        for _ in range(request["words"]):
            scores = np.asarray(logits[0, -1], dtype=np.float64)
            if temperature <= 0:
                choice = int(np.argmax(scores))
            else:
                probabilities = np.exp((scores - scores.max()) / temperature)
                choice = int(rng.choice(len(scores), p=probabilities / probabilities.sum()))
            generated.append(vocabulary[choice])
            logits, state = self.network(tf.constant([[choice]], tf.int32), state, training=False)
        text = " ".join(prime + generated)
        return text.replace(f" {eos} ", "\n").replace(f" {eos}", "\n") if eos else text
