"""Built-in datasets that work offline: a synthetic plane fit and scikit-learn's bundled sets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tftrain.data.augment import AugmentConfig
from tftrain.data.base import ArrayDataset, SplitConfig
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits


@dataclass(frozen=True)
class SyntheticLinearConfig(SplitConfig):
    num_examples: int = field(default=1000, metadata=limits(ge=10))
    num_features: int = field(default=2, metadata=limits(ge=1))
    weights: tuple[float, ...] = (0.1, 0.2)
    bias: float = 0.3
    noise: float = field(default=0.01, metadata=limits(ge=0))

    def __post_init__(self):
        if self.weights and len(self.weights) != self.num_features:
            raise FieldError(
                "weights", f"has {len(self.weights)} values for {self.num_features} features"
            )


@datasets.register("synthetic_linear")
class SyntheticLinear(ArrayDataset):
    """y = w.x + b + noise with x uniform in [0, 1): the tutorials' plane fit, true w known."""

    Config = SyntheticLinearConfig
    description = "synthetic linear regression with known true weights (offline)"
    task = "regression"
    tasks = frozenset({"regression"})

    def true_weights(self) -> np.ndarray:
        if self.config.weights:
            return np.asarray(self.config.weights, dtype=np.float32)
        return np.random.default_rng(self.seed).normal(size=self.config.num_features)

    def load(self) -> dict:
        rng = np.random.default_rng([self.seed, 1])
        x = rng.random((self.config.num_examples, self.config.num_features), dtype=np.float32)
        noise = rng.normal(0.0, self.config.noise, size=self.config.num_examples)
        y = x @ self.true_weights() + self.config.bias + noise
        return {"train": (x, y.astype(np.float32))}

    def feature_names(self):
        return [f"x{i}" for i in range(self.config.num_features)]


@dataclass(frozen=True)
class DigitsConfig(SplitConfig):
    image: bool = False  # true: (8, 8, 1) images for convnets instead of 64 flat values
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@datasets.register("digits")
class Digits(ArrayDataset):
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes."""

    Config = DigitsConfig
    description = "scikit-learn's bundled 8x8 digits, 10 classes (offline)"
    tasks = frozenset({"classification"})

    def load(self) -> dict:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.data.astype(np.float32)
        if self.config.image:
            x = x.reshape(len(x), 8, 8, 1)
        return {"train": (x, bunch.target.astype(np.int32))}

    def build_spec(self):
        spec = super().build_spec()
        spec.extra["pixel_max"] = 16.0  # for augmentation and encoded-image serving
        return spec

    def transform(self, train_x):
        if self.config.standardize:
            return super().transform(train_x)
        return {"shift": [0.0], "scale": [1.0 / 16.0]}  # pixel values are 0..16

    def class_names(self, labels):
        return [str(i) for i in range(10)]


@dataclass(frozen=True)
class DiabetesConfig(SplitConfig):
    standardize: bool = True


@datasets.register("diabetes")
class Diabetes(ArrayDataset):
    """scikit-learn's bundled diabetes regression set: 442 patients, 10 features."""

    Config = DiabetesConfig
    description = "scikit-learn's bundled diabetes regression, 10 features (offline)"
    task = "regression"
    tasks = frozenset({"regression"})

    def load(self) -> dict:
        from sklearn.datasets import load_diabetes

        bunch = load_diabetes(scaled=False)
        return {"train": (bunch.data.astype(np.float32), bunch.target.astype(np.float32))}

    def feature_names(self):
        from sklearn.datasets import load_diabetes

        return list(load_diabetes().feature_names)
