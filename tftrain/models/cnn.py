"""Convolutional classifier: conv/pool stacks and dense layers; LeNet-5 and Deep-MNIST presets.

The network is `[conv -> (batch norm) -> activation -> pool] x N -> flatten ->
[dense -> activation -> dropout] x M -> logits`. Per-layer keys (`kernel_size`, `strides`,
`padding`, `pooling`) take one value for every conv layer or one value per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tftrain.data.base import DataSpec
from tftrain.errors import ConfigError
from tftrain.lazy import keras
from tftrain.models.base import (
    Activation,
    Initializer,
    Model,
    ModelConfig,
    PredictRequest,
    classification_metrics,
    classification_outputs,
)
from tftrain.models.text_networks import check_embeddings, initialize_embeddings, kim_network
from tftrain.models.text_serving import (
    TEXT_OPTION,
    attach_table,
    is_text,
    predict_texts,
    refuse_text_option,
    text_export_examples,
    text_serving_functions,
)
from tftrain.registry import models
from tftrain.schema import FieldError, limits

LAYER_KEYS = ("kernel_size", "strides", "padding", "pooling")
TEXT_PRESETS = ("kim2014",)  # for text_classification data


@dataclass(frozen=True)
class CnnConfig(ModelConfig):
    """Conv/pool stack, dense head, dropout; `preset:` fills every key you leave unset."""

    # Each preset sets every layer key, so a preset alone fully defines its network.
    PRESETS = {
        # 《TensorFlow实战Google深度学习框架》 ch. 6 (the tutorials' LeNet-5 variant): SAME 5x5
        # convs of 32 and 64 filters, 2x2 max pools, dense 512 with dropout 0.5 in training.
        "lenet5": {
            "filters": [32, 64],
            "kernel_size": [5],
            "strides": [1],
            "padding": ["same"],
            "pooling": ["max"],
            "activation": "relu",
            "dense_units": [512],
            "dense_activation": "relu",
            "dropout": 0.5,
            "batch_norm": False,
        },
        # LeCun et al. (1998) on 28x28 input: C1 6@5x5 (SAME, so 28x28 like the paper's padded
        # 32x32), S2 average pool, C3 16@5x5 VALID -> 10x10, S4 -> 5x5, F5 120, F6 84; tanh.
        "lenet5_original": {
            "filters": [6, 16],
            "kernel_size": [5],
            "strides": [1],
            "padding": ["same", "valid"],
            "pooling": ["avg"],
            "activation": "tanh",
            "dense_units": [120, 84],
            "dense_activation": "tanh",
            "dropout": 0.0,
            "batch_norm": False,
        },
        # TensorFlow's "Deep MNIST for experts": SAME 5x5 convs of 32 and 64, 2x2 max pools,
        # dense 1024, dropout 0.5 (keep_prob 0.5), softmax readout.
        "deep_mnist": {
            "filters": [32, 64],
            "kernel_size": [5],
            "strides": [1],
            "padding": ["same"],
            "pooling": ["max"],
            "activation": "relu",
            "dense_units": [1024],
            "dense_activation": "relu",
            "dropout": 0.5,
            "batch_norm": False,
        },
        # Kim (2014), "Convolutional Neural Networks for Sentence Classification" (CNN-rand):
        # parallel convolutions of widths 3, 4, 5 with 100 filters each over word embeddings,
        # max over time, dropout 0.5. Used on text_classification data.
        "kim2014": {
            "filter_sizes": [3, 4, 5],
            "num_filters": 100,
            "embedding_dim": 128,
            "dropout": 0.5,
        },
    }

    preset: str | None = None
    filters: tuple[int, ...] = (32, 64)
    kernel_size: tuple[int, ...] = (5,)
    strides: tuple[int, ...] = (1,)
    padding: tuple[Literal["same", "valid"], ...] = ("same",)
    pooling: tuple[Literal["max", "avg", "none"], ...] = ("max",)
    pool_size: int = field(default=2, metadata=limits(ge=1))
    pool_strides: int | None = field(default=None, metadata=limits(ge=1))
    pool_padding: Literal["same", "valid"] = "same"
    activation: Activation = "relu"
    batch_norm: bool = False
    conv_dropout: float = field(default=0.0, metadata=limits(ge=0, lt=1))
    dense_units: tuple[int, ...] = field(default=(512,), metadata=limits(ge=1))
    dense_activation: Activation = "relu"
    dropout: float = field(default=0.5, metadata=limits(ge=0, lt=1))
    kernel_initializer: Initializer = "glorot_uniform"
    # Text data (Kim 2014): the image keys above do not apply.
    filter_sizes: tuple[int, ...] = (3, 4, 5)
    num_filters: int = field(default=100, metadata=limits(ge=1))
    embedding_dim: int = field(default=128, metadata=limits(ge=1))
    embeddings: dict[str, Any] | None = None  # {from: RUN_DIR | vectors file, trainable: bool}

    def __post_init__(self):
        check_embeddings(self.embeddings)
        if not self.filter_sizes or any(width < 1 for width in self.filter_sizes):
            raise FieldError(
                "filter_sizes", f"must be widths of at least 1, got {self.filter_sizes}"
            )
        if not self.filters:
            raise FieldError("filters", "needs at least one conv layer, e.g. [32, 64]")
        for name in ("filters", "kernel_size", "strides"):
            if any(value < 1 for value in getattr(self, name)):
                raise FieldError(
                    name, f"values must be at least 1, got {list(getattr(self, name))}"
                )
        if any(units < 1 for units in self.dense_units):
            raise FieldError(
                "dense_units", f"values must be at least 1, got {list(self.dense_units)}"
            )
        for name in LAYER_KEYS:
            values = getattr(self, name)
            if len(values) not in (1, len(self.filters)):
                raise FieldError(
                    name,
                    f"give one value for every conv layer or one per layer "
                    f"({len(self.filters)} filters), got {len(values)}: {list(values)}",
                )

    def per_layer(self, name: str) -> list:
        values = getattr(self, name)
        return list(values) * len(self.filters) if len(values) == 1 else list(values)


@models.register("cnn")
class ConvNet(Model):
    """LeNet-5 style convolutional classifier for image-shaped data (H, W, C)."""

    Config = CnnConfig
    description = "convolutional network; presets lenet5, lenet5_original, deep_mnist, kim2014"
    tasks = frozenset({"classification"})
    predict_options = (*Model.predict_options, TEXT_OPTION)

    def __init__(self, config, spec: DataSpec):
        if not is_text(spec) and len(spec.input_shape) not in (2, 3):
            raise ConfigError(
                f"config error: model 'cnn' needs image-shaped inputs (height, width, channels), "
                f"but the data gives shape {list(spec.input_shape)}; set data.flatten: false "
                f"(idx) or data.image: true (digits)"
            )
        super().__init__(config, spec)

    def build(self):
        if is_text(self.spec):
            return attach_table(kim_network(self.config, self.spec), self.spec)
        config = self.config
        shape = tuple(self.spec.input_shape)
        layers = [keras.Input(shape, name="image")]
        if len(shape) == 2:
            layers.append(keras.layers.Reshape((*shape, 1), name="add_channel"))
        conv_settings = zip(
            config.filters, *(config.per_layer(name) for name in LAYER_KEYS), strict=True
        )
        for index, (filters, kernel, stride, padding, pooling) in enumerate(conv_settings):
            layers.append(
                keras.layers.Conv2D(
                    filters,
                    kernel,
                    strides=stride,
                    padding=padding,
                    activation=None if config.batch_norm else config.activation,
                    use_bias=not config.batch_norm,
                    kernel_initializer=config.kernel_initializer,
                    name=f"conv_{index}",
                )
            )
            if config.batch_norm:
                layers.append(keras.layers.BatchNormalization(name=f"batch_norm_{index}"))
                layers.append(keras.layers.Activation(config.activation, name=f"act_{index}"))
            if pooling != "none":
                pool = (
                    keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
                )
                layers.append(
                    pool(
                        config.pool_size,
                        strides=config.pool_strides or config.pool_size,
                        padding=config.pool_padding,
                        name=f"{pooling}_pool_{index}",
                    )
                )
            if config.conv_dropout:
                layers.append(
                    keras.layers.Dropout(config.conv_dropout, name=f"conv_dropout_{index}")
                )
        layers.append(keras.layers.Flatten(name="flatten"))
        for index, units in enumerate(config.dense_units):
            layers.append(
                keras.layers.Dense(
                    units,
                    activation=config.dense_activation,
                    kernel_initializer=config.kernel_initializer,
                    name=f"dense_{index}",
                )
            )
            if config.dropout:
                layers.append(keras.layers.Dropout(config.dropout, name=f"dropout_{index}"))
        layers.append(
            keras.layers.Dense(
                self.spec.num_classes, kernel_initializer=config.kernel_initializer, name="logits"
            )
        )
        try:
            return keras.Sequential(layers, name=config.preset or "cnn")
        except ValueError as error:  # e.g. a VALID conv or pool that shrinks below 1 pixel
            raise ConfigError(
                f"config error: the cnn layers do not fit input shape {list(shape)}: {error}"
            ) from None

    def initialize_weights(self) -> str | None:
        if not is_text(self.spec):
            return None
        return initialize_embeddings(self.network, self.spec, self.config)

    def losses_and_metrics(self, labels, outputs):
        weights = self.spec.extra.get("class_weights")
        return classification_metrics(labels, outputs, class_weights=weights)

    def serving_outputs(self, outputs):
        return classification_outputs(outputs)

    # --- describing the network ----------------------------------------------------------

    def layer_table(self) -> list[tuple[str, str, tuple, int]]:
        """(layer name, layer kind, output shape, parameter count) for every layer."""
        rows = []
        for layer in self.network.layers:
            if isinstance(layer, keras.layers.InputLayer):  # functional (text) networks list it
                continue
            shape = tuple(layer.output.shape[1:])
            rows.append((layer.name, type(layer).__name__, shape, int(layer.count_params())))
        return rows

    def describe_text(self) -> str:
        rows = self.layer_table()
        input_shape = tuple(self.spec.input_shape)
        lines = [f"{'layer':18} {'kind':20} {'output shape':16} {'parameters':>10}"]
        source = "ids" if is_text(self.spec) else "image"
        lines.append(f"{source:18} {'Input':20} {str(input_shape):16} {0:>10,}")
        for name, kind, shape, params in rows:
            lines.append(f"{name:18} {kind:20} {str(shape):16} {params:>10,}")
        total = sum(row[3] for row in rows)
        lines.append(f"{'total':18} {'':20} {'':16} {total:>10,}")
        return "\n".join(lines)

    @classmethod
    def describe(cls, overrides=()) -> str:
        """Layer tables for `tftrain models cnn [--set KEY=VALUE ...]`.

        Keys are model keys (`preset=lenet5`, `dense_units=[256]`) plus `input_shape=[H,W,C]`
        and `num_classes=N` (default 28x28x1 and 10, MNIST); text presets (kim2014) take
        `max_length=N` and `vocab_size=N` (default 200, 20000). Without `preset` every preset
        is shown.
        """
        import yaml

        from tftrain.schema import Sources, build

        data = {"input_shape": [28, 28, 1], "num_classes": 10, "max_length": 200}
        raw, data = {}, {**data, "vocab_size": 20000}
        for override in overrides:
            key, sep, text = override.partition("=")
            key = key.strip().removeprefix("model.")
            if not sep or not key:
                raise ConfigError(f"usage error: --set expects KEY=VALUE, got {override!r}")
            value = yaml.safe_load(text) if text.strip() else None
            (data if key in data else raw)[key] = value
        if not isinstance(data["input_shape"], list) or not data["input_shape"]:
            raise ConfigError("usage error: input_shape must be a list such as [28, 28, 1]")
        spec = DataSpec(
            task="classification",
            input_shape=tuple(int(v) for v in data["input_shape"]),
            num_classes=int(data["num_classes"]),
        )
        words = ["<pad>", "<unk>"] + [f"w{i}" for i in range(int(data["vocab_size"]) - 2)]
        text_spec = DataSpec(
            task="classification",
            input_shape=(int(data["max_length"]),),
            input_dtype="int32",
            num_classes=int(data["num_classes"]),
            vocabulary=words,
            extra={"text": {"lowercase": True, "split_punctuation": True}},
        )
        presets = [raw["preset"]] if raw.get("preset") else [*CnnConfig.PRESETS, None]
        blocks = []
        for preset in presets:
            tree = {**raw, "type": "cnn", **({"preset": preset} if preset else {})}
            config = build(CnnConfig, tree, "model", Sources({}, "tftrain models --set"))
            title = f"preset {preset}" if preset else "no preset (the defaults)"
            shown = text_spec if preset in TEXT_PRESETS else spec
            where = f"input {list(shown.input_shape)}, {shown.num_classes} classes"
            blocks.append(f"cnn, {title}; {where}\n{cls(config, shown).describe_text()}")
        return "\n\n".join(blocks)

    # --- predict and serving on images ---------------------------------------------------

    def predict(self, request: PredictRequest):
        """Top-k classes for image files and folders; NPZ/NPY/CSV go to the base reader."""
        from tftrain.preprocessing.images import is_image_path

        if is_text(self.spec):
            return predict_texts(self, request)
        refuse_text_option(request)
        if not request.inputs or not any(is_image_path(path) for path in request.inputs):
            return super().predict(request)
        from tftrain.models.image_serving import predict_images

        return predict_images(self, request)

    def serving_functions(self) -> dict:
        from tftrain.models.image_serving import encoded_image_signature

        if is_text(self.spec):
            return text_serving_functions(self)

        return {**super().serving_functions(), **encoded_image_signature(self)}

    def evaluate_extra(self, dataset, split, *, plot=None, max_examples=None) -> dict:
        return {}  # no closed-form reference for a convnet; avoid loading arrays for nothing

    def export_examples(self, dataset, count: int) -> dict:
        import numpy as np

        if is_text(self.spec):
            return text_export_examples(dataset, count)

        for split in ("test", "valid", "train"):
            if dataset.num_examples(split):
                arrays = dataset.arrays(split)
                if arrays is not None:
                    return {"features": np.asarray(arrays[0][:count], dtype=np.float32)}
        return super().export_examples(dataset, count)
