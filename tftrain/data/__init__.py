"""Datasets: the contract in `base`, and every reader and built-in set, registered by name."""

from tftrain.data import builtin, idx, tabular  # noqa: F401  (importing registers them)
