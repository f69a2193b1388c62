"""Linear regression with a mean-squared-error loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tftrain.lazy import keras
from tftrain.models.base import Initializer, Model, ModelConfig, regression_metrics
from tftrain.registry import models


@dataclass(frozen=True)
class LinearConfig(ModelConfig):
    use_bias: bool = True
    kernel_initializer: Initializer = "zeros"


@models.register("linear")
class LinearRegression(Model):
    """Linear regression y = Wx + b trained by gradient descent on MSE."""

    Config = LinearConfig
    description = "linear regression (MSE); eval also reports the closed-form least-squares optimum"
    tasks = frozenset({"regression"})

    def build(self):
        return keras.Sequential(
            [
                keras.Input(self.spec.input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(
                    self.spec.output_dim,
                    use_bias=self.config.use_bias,
                    kernel_initializer=self.config.kernel_initializer,
                    name="linear",
                ),
            ],
            name="linear_regression",
        )

    def losses_and_metrics(self, labels, outputs):
        return regression_metrics(labels, outputs)

    def serving_outputs(self, outputs):
        return {"predictions": outputs}

    def reference_metrics(self, train_arrays, eval_arrays):
        """Least-squares optimum fitted on train, scored on the evaluated split."""
        from tftrain.data.base import apply_transform

        def design(x):
            x = apply_transform(x, self.spec).numpy().reshape(len(x), -1).astype(np.float64)
            return np.hstack([x, np.ones((len(x), 1))]) if self.config.use_bias else x

        train_x, train_y = train_arrays
        eval_x, eval_y = eval_arrays
        targets = train_y.reshape(len(train_y), -1).astype(np.float64)
        solution, *_ = np.linalg.lstsq(design(train_x), targets, rcond=None)
        residual = design(eval_x) @ solution - eval_y.reshape(len(eval_y), -1)
        return {"optimal_mse": float(np.mean(residual**2))}
