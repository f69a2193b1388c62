"""The naive forecasts a learned model must beat, and the scores that compare them.

All work on windows: inputs `x` (n, window, columns; targets are the first columns) and truth
`y` (n, horizon * targets, step-major: step 1 of every target, then step 2, ...).
"""

from __future__ import annotations

import numpy as np


def persistence(x: np.ndarray, horizon: int, targets: int) -> np.ndarray:
    """Every future step = the window's last value of each target."""
    return np.tile(x[:, -1, :targets], (1, horizon))


def seasonal_naive(
    series: np.ndarray, ends: np.ndarray, horizon: int, season: int
) -> np.ndarray | None:
    """Step h after the window's last row e = the value one season earlier (e + h - k*season,
    the latest such row already observed); None when a window lacks that much history.
    `series` is (rows, targets) over the whole file, `ends` the last input row of each window."""
    steps = np.arange(1, horizon + 1)
    back = season * np.ceil(steps / season).astype(int)
    rows = ends[:, None] + steps[None, :] - back[None, :]  # (n, horizon)
    if len(rows) and rows.min() < 0:
        return None
    return series[rows].reshape(len(ends), -1)


class LinearAutoregression:
    """Least squares from the whole window (plus a bias) to every output, in closed form."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        design = self.design(x)
        self.weights, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)

    @staticmethod
    def design(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64)
        return np.hstack([flat, np.ones((len(x), 1))])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.design(x) @ self.weights


def scores(truth: np.ndarray, forecasts: dict) -> dict:
    """{"rmse": .., "mae": .., "NAME_rmse": .., "NAME_mae": ..} over every predicted value;
    the forecast named "" is the model's own."""
    truth = truth.astype(np.float64)
    result = {}
    for name, forecast in forecasts.items():
        errors = np.asarray(forecast, dtype=np.float64).reshape(truth.shape) - truth
        prefix = f"{name}_" if name else ""
        result[f"{prefix}rmse"] = float(np.sqrt(np.mean(errors**2)))
        result[f"{prefix}mae"] = float(np.mean(np.abs(errors)))
    return result
