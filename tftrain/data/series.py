"""A built-in time series: a (noisy, multi-) sine wave cut into windows -> next value(s).

The tutorials' sine-wave prediction: from the last `window` values, predict the next
`horizon` values. The series is split in time order (valid and test are the last windows),
so the model is scored on a stretch of the curve it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tftrain.data.base import ArrayDataset, SplitConfig
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits


@dataclass(frozen=True)
class SineConfig(SplitConfig):
    num_points: int = field(default=3000, metadata=limits(ge=10))
    step: float = field(default=0.05, metadata=limits(gt=0))  # time between points
    frequencies: tuple[float, ...] = (1.0,)  # radians per time unit, one per component
    amplitudes: tuple[float, ...] = (1.0,)
    noise: float = field(default=0.0, metadata=limits(ge=0))  # Gaussian noise std
    window: int = field(default=20, metadata=limits(ge=1))
    horizon: int = field(default=1, metadata=limits(ge=1))
    holdout: Literal["random", "last"] = "last"

    def __post_init__(self):
        if len(self.frequencies) != len(self.amplitudes):
            raise FieldError(
                "amplitudes",
                f"has {len(self.amplitudes)} values for {len(self.frequencies)} frequencies",
            )
        if self.window + self.horizon >= self.num_points:
            raise FieldError("window", "plus horizon must be shorter than num_points")


@datasets.register("sine")
class Sine(ArrayDataset):
    """sum_k a_k sin(f_k t) + noise, windows of `window` values -> the next `horizon`."""

    Config = SineConfig
    description = "synthetic (noisy, multi-) sine series: window -> next value(s) (offline)"
    task = "regression"
    tasks = frozenset({"regression"})

    def series(self) -> np.ndarray:
        c = self.config
        t = np.arange(c.num_points) * c.step
        values = sum(a * np.sin(f * t) for f, a in zip(c.frequencies, c.amplitudes, strict=True))
        noise = np.random.default_rng([self.seed, 3]).normal(0.0, c.noise, c.num_points)
        return (values + noise).astype(np.float32)

    def load(self) -> dict:
        c = self.config
        values = self.series()
        count = c.num_points - c.window - c.horizon + 1
        starts = np.arange(count)[:, None]
        x = values[starts + np.arange(c.window)][..., None]  # (count, window, 1)
        y = values[starts + c.window + np.arange(c.horizon)]  # (count, horizon)
        return {"train": (x, y)}
