"""Softmax (multinomial logistic) regression, and with hidden layers the multi-layer perceptron."""

from __future__ import annotations

from dataclasses import dataclass, field

from tftrain.lazy import keras
from tftrain.models.base import (
    Activation,
    Initializer,
    Model,
    ModelConfig,
    classification_metrics,
    classification_outputs,
)
from tftrain.registry import models
from tftrain.schema import limits


@dataclass(frozen=True)
class SoftmaxConfig(ModelConfig):
    hidden_units: tuple[int, ...] = field(default=(), metadata=limits(ge=1))
    activation: Activation = "relu"
    dropout: float = field(default=0.0, metadata=limits(ge=0, lt=1))
    kernel_initializer: Initializer = "glorot_uniform"


@models.register("softmax")
class SoftmaxRegression(Model):
    """Softmax regression; `hidden_units: [500]` makes it the tutorials' MLP."""

    Config = SoftmaxConfig
    description = "softmax regression; with hidden_units the multi-layer perceptron"
    tasks = frozenset({"classification"})

    def build(self):
        layers = [keras.Input(self.spec.input_shape), keras.layers.Flatten()]
        for index, units in enumerate(self.config.hidden_units):
            layers.append(
                keras.layers.Dense(
                    units,
                    activation=self.config.activation,
                    kernel_initializer=self.config.kernel_initializer,
                    name=f"hidden_{index}",
                )
            )
            if self.config.dropout:
                layers.append(keras.layers.Dropout(self.config.dropout, name=f"dropout_{index}"))
        layers.append(
            keras.layers.Dense(
                self.spec.num_classes,
                kernel_initializer=self.config.kernel_initializer,
                name="logits",
            )
        )
        name = "mlp" if self.config.hidden_units else "softmax_regression"
        return keras.Sequential(layers, name=name)

    def losses_and_metrics(self, labels, outputs):
        return classification_metrics(labels, outputs)

    def serving_outputs(self, outputs):
        return classification_outputs(outputs)
