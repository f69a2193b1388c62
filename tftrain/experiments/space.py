"""A sweep's search space: `--grid` products and seeded `--random` draws, as a list of trials.

The list depends only on the options and the seed, so running the same sweep again finds the
same trials under the same directory names, which is what makes a sweep resumable.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import dataclass

from tftrain.errors import ConfigError


@dataclass(frozen=True)
class Trial:
    """One point of the space: its index, its values (dotted key -> value) and its folder."""

    index: int
    values: dict

    @property
    def name(self) -> str:
        """`003-learning_rate=0.01-hidden_units=64,32`: index first, so folders sort by trial."""
        parts = [f"{self.index:03d}"]
        for key, value in self.values.items():
            parts.append(f"{key.rpartition('.')[2]}={show(value)}")
        return re.sub(r"[^A-Za-z0-9._=,+-]", "_", "-".join(parts))[:120]

    def overrides(self) -> list[str]:
        return [f"{key}={json.dumps(value)}" for key, value in self.values.items()]


def show(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(show(v) for v in value)
    return str(value)


def _number(value):
    """YAML 1.1 reads `1e-5` as text; a sweep means the number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _split(option: str, text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ConfigError(f"usage error: {option} expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _values(option: str, text: str) -> tuple[str, list]:
    """`KEY=[v1,v2,...]` -> (KEY, [v1, v2, ...])."""
    from tftrain.config_reader import parse_value

    key, value = _split(option, text)
    values = parse_value(value, text)
    if not isinstance(values, list) or not values:
        raise ConfigError(f"usage error: {option} {text!r}: expected KEY=[v1,v2,...]")
    return key, [_number(v) for v in values]


def _range(option: str, text: str, *, positive: bool) -> tuple[str, float, float]:
    """`KEY=LO,HI` -> (KEY, LO, HI)."""
    key, value = _split(option, text)
    try:
        low, high = (float(part) for part in value.split(","))
    except ValueError:
        raise ConfigError(f"usage error: {option} {text!r}: expected KEY=LO,HI") from None
    if not low < high or (positive and low <= 0):
        need = "0 < LO < HI" if positive else "LO < HI"
        raise ConfigError(f"usage error: {option} {text!r}: needs {need}")
    return key, low, high


def trials(*, grid=(), random_count=None, uniform=(), loguniform=(), choice=(), seed=0):
    """Every grid point, times `random_count` seeded draws of the random keys when given.

    Random numbers keep 4 significant digits: readable folder names, nothing lost in tuning.
    """
    grid_items = [_values("--grid", text) for text in grid]
    grids = dict(grid_items)
    draws = [(key, "uniform", low, high) for key, low, high in
             (_range("--uniform", t, positive=False) for t in uniform)]  # fmt: skip
    draws += [(key, "loguniform", low, high) for key, low, high in
              (_range("--loguniform", t, positive=True) for t in loguniform)]  # fmt: skip
    draws += [(key, "choice", values, None) for key, values in
              (_values("--choice", t) for t in choice)]  # fmt: skip
    keys = [key for key, _ in grid_items] + [draw[0] for draw in draws]
    repeated = {key for key in keys if keys.count(key) > 1}
    if repeated:
        raise ConfigError(f"usage error: {', '.join(sorted(repeated))} is swept twice")
    if draws and not random_count:
        raise ConfigError("usage error: --uniform, --loguniform and --choice need --random N")
    if random_count and not draws:
        raise ConfigError("usage error: --random N needs --uniform, --loguniform or --choice")
    rng = random.Random(seed)
    samples = [{} for _ in range(random_count or 1)]
    for sample in samples:
        for key, kind, low, high in draws:
            if kind == "choice":
                sample[key] = rng.choice(low)
            elif kind == "uniform":
                sample[key] = float(f"{rng.uniform(low, high):.4g}")
            else:
                sample[key] = float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.4g}")
    points = [dict(zip(grids, combo, strict=True)) for combo in itertools.product(*grids.values())]
    combined = [{**point, **sample} for point in points for sample in samples]
    if combined == [{}]:
        raise ConfigError("usage error: nothing to sweep; give --grid or --random with ranges")
    return [Trial(index, values) for index, values in enumerate(combined)]
