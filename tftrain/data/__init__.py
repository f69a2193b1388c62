"""Datasets: the contract in `base`, and every reader and built-in set, registered by name."""

# Importing a reader's module registers it.
from tftrain.data import (  # noqa: F401
    builtin,
    idx,
    images,
    pairs,
    series,
    tabular,
    text,
    tfrecord,
    word2vec_corpus,
)
