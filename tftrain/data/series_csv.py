"""A user's series from a CSV file: windows of `window` rows -> the next `horizon` target values.

The file is split in time order before any window is cut: the last `test_fraction` of the rows
is test, the `valid_fraction` before it is valid, the rest train, and a window (inputs and
targets) lies wholly inside one part. Shift and scale are fitted on the training rows only; the
model's inputs are normalised by them and its outputs mapped back to the file's units
(`extra["target_transform"]`), so losses, metrics, exports and `predict` speak those units.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tftrain.data import forecast_baselines as baselines
from tftrain.data.base import ArrayDataset, DataConfig, DataSpec, require_path, resolve_file
from tftrain.data.series_table import fill_missing, format_time, read_series
from tftrain.errors import ConfigError, DataError
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits


@dataclass(frozen=True)
class SeriesCsvConfig(DataConfig):
    path: str = ""
    time_column: str | int | None = "auto"  # auto: the first column of dates; null: row order
    target: str | int | tuple[str, ...] = "auto"  # auto: the single numeric non-time column
    features: tuple[str, ...] = ()  # extra input columns (not forecast)
    window: int = field(default=30, metadata=limits(ge=1))
    horizon: int = field(default=1, metadata=limits(ge=1))
    stride: int = field(default=1, metadata=limits(ge=1))
    season: int | None = field(default=None, metadata=limits(ge=1))  # seasonal-naive baseline
    missing: Literal["error", "drop", "ffill", "interpolate"] = "error"
    valid_fraction: float = field(default=0.1, metadata=limits(ge=0, lt=1))
    test_fraction: float = field(default=0.2, metadata=limits(ge=0, lt=1))

    def __post_init__(self):
        require_path(self.path, "path")
        if self.valid_fraction + self.test_fraction >= 1:
            raise FieldError("test_fraction", "plus valid_fraction must be less than 1")


def read_table(config: SeriesCsvConfig, path: Path):
    """The configured columns of `path`, missing values handled by `data.missing`."""
    table = read_series(
        path, time_column=config.time_column, target=config.target, features=config.features
    )
    report = fill_missing(table, config.missing)
    if report:
        print(report, file=sys.stderr, flush=True)  # a log line; stdout is kept for results
    return table


def windows(values: np.ndarray, start: int, stop: int, config, targets: int):
    """(x, y, last input row) of every window inside rows [start, stop)."""
    ends = np.arange(start + config.window - 1, stop - config.horizon, config.stride)
    firsts = ends - config.window + 1
    x = values[firsts[:, None] + np.arange(config.window)]  # (n, window, columns)
    future = values[ends[:, None] + 1 + np.arange(config.horizon), :targets]
    y = future.reshape(len(ends), -1)
    return x.astype(np.float32), y.astype(np.float32), ends


@datasets.register("series_csv")
class SeriesCsv(ArrayDataset):
    """A CSV series forecast from its last `window` rows, split in time order."""

    Config = SeriesCsvConfig
    description = "a CSV time series: window of rows -> next `horizon` values (chronological split)"
    task = "regression"
    tasks = frozenset({"regression"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._table = None
        self._windows = None

    @property
    def table(self):
        if self._table is None:
            self._table = read_table(self.config, resolve_file(self.config.path, "data.path"))
        return self._table

    @property
    def targets(self) -> int:
        """How many of the table's columns are forecast (they come first)."""
        c = self.config
        return len(self.table.columns) - len(c.features)

    def bounds(self) -> dict:
        """{split: (first row, end row)}: the last rows are test, valid before them."""
        c, rows = self.config, len(self.table)
        test = round(rows * c.test_fraction)
        valid = round(rows * c.valid_fraction)
        train = rows - test - valid
        parts = {
            "train": (0, train),
            "valid": (train, train + valid),
            "test": (train + valid, rows),
        }
        span = c.window + c.horizon
        for split, (start, stop) in parts.items():
            if stop - start and stop - start < span:
                raise ConfigError(
                    f"config error: the {split} part has {stop - start} rows of {rows}, fewer "
                    f"than data.window + data.horizon = {span}; lower the window or raise the "
                    f"{'fraction' if split != 'train' else 'row count'}"
                )
        return {split: part for split, part in parts.items() if part[1] > part[0]}

    def windows(self) -> dict:
        """{split: (x, y, last input row of each window)}, cut once."""
        if self._windows is None:
            self._windows = {
                split: windows(self.table.values, start, stop, self.config, self.targets)
                for split, (start, stop) in self.bounds().items()
            }
        return self._windows

    @property
    def splits(self) -> dict:
        return {split: (x, y) for split, (x, y, _) in self.windows().items()}

    def build_spec(self) -> DataSpec:
        c, table = self.config, self.table
        start, stop = self.bounds()["train"]
        train_rows = table.values[start:stop]
        mean = train_rows.mean(axis=0)
        std = train_rows.std(axis=0)
        std[std == 0] = 1.0  # a constant column stays at zero instead of dividing by zero
        targets = self.targets
        kind = None if table.times is None else table.times.dtype.kind
        return DataSpec(
            task="regression",
            input_shape=(c.window, len(table.columns)),
            output_dim=c.horizon * targets,
            feature_names=list(table.columns),
            transform={"shift": mean.tolist(), "scale": (1.0 / std).tolist()},
            extra={
                "target_transform": {
                    "shift": np.tile(mean[:targets], c.horizon).tolist(),
                    "scale": np.tile(1.0 / std[:targets], c.horizon).tolist(),
                },
                "series": {
                    "time_column": table.time_name,
                    "time_kind": {"M": "datetime", "f": "number"}.get(kind),
                    "targets": list(table.columns[:targets]),
                    "features": list(c.features),
                    "window": c.window,
                    "horizon": c.horizon,
                    "missing": c.missing,
                },
            },
        )

    # --- what `tftrain eval` compares the model with ------------------------------------

    def baseline_forecasts(self, split: str) -> dict:
        """{name: forecasts} of the naive models on `split`'s windows, in the file's units."""
        self.check_split(split)
        x, _ = self.splits[split]
        c, targets = self.config, self.targets
        forecasts = {"persistence": baselines.persistence(x, c.horizon, targets)}
        if c.season:
            seasonal = baselines.seasonal_naive(
                self.table.values[:, :targets], self.windows()[split][2], c.horizon, c.season
            )
            if seasonal is not None:
                forecasts["seasonal_naive"] = seasonal
        forecasts["linear"] = baselines.LinearAutoregression(*self.splits["train"])(x)
        return forecasts

    def forecast_times(self, split: str):
        """The time of each window's first forecast step (None for row-order series)."""
        if self.table.times is None:
            return None
        return self.table.times[self.windows()[split][2] + 1]


def forecast_input(path, spec: DataSpec):
    """(the last window of a series file as model input [1, window, columns], the times of
    the `horizon` steps after the file's end, or None if its time step is not regular)."""
    series = spec.extra["series"]
    config = SeriesCsvConfig(
        path=str(path),
        time_column=series["time_column"],
        target=tuple(series["targets"]),
        features=tuple(series["features"]),
        missing=series["missing"],
    )
    table = read_table(config, Path(path))
    window, horizon = series["window"], series["horizon"]
    if len(table) < window:
        raise DataError(f"{path}: {len(table)} rows; the model needs the last {window}")
    times = None
    if table.times is not None:
        last = table.times[-window:] if window > 1 else table.times[-2:]
        steps = np.diff(last)
        if len(steps) and (steps == steps[0]).all():
            times = table.times[-1] + steps[0] * np.arange(1, horizon + 1)
    return table.values[None, -window:].astype(np.float32), times


def forecast_rows(predictions: np.ndarray, spec: DataSpec, times) -> list[dict]:
    """One row per future step: its number, its time (if known) and each target's value."""
    series = spec.extra["series"]
    names = series["targets"]
    values = np.asarray(predictions, dtype=np.float64).reshape(series["horizon"], len(names))
    rows = []
    for step, row in enumerate(values, start=1):
        entry = {"step": step}
        if times is not None:
            entry[series["time_column"]] = format_time(times[step - 1])
        entry.update({name: round(float(v), 6) for name, v in zip(names, row, strict=True)})
        rows.append(entry)
    return rows
