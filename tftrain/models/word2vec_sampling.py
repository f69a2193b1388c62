"""Which words word2vec trains on: sub-sampling, reduced context windows and noise words.

The fused kernel (tftrain/ops) does the same draws in C++; these are the NumPy tables it is
given and the TensorFlow version the graph kernel and evaluation use.
"""

from __future__ import annotations

import numpy as np

from tftrain.lazy import tf


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """word2vec's sub-sampling: P(keep) = (sqrt(f / t) + 1) * t / f, t = sample * total."""
    counts = np.asarray(counts, dtype=np.float64)
    if not sample:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts: np.ndarray, sampler: str, power: float) -> np.ndarray:
    """Noise probabilities of the words (ids sorted by falling count)."""
    if sampler == "log_uniform":
        # P(rank k) = log((k + 2) / (k + 1)) / log(V + 1), as tf.random.log_uniform_candidate_sampler.
        ranks = np.arange(len(counts), dtype=np.float64)
        noise = np.log((ranks + 2.0) / (ranks + 1.0))
    else:
        noise = np.asarray(counts, dtype=np.float64) ** power
    return noise / noise.sum()


def alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction): draw a bucket i uniformly, keep i with
    probability accept[i], else take alias[i]. Two reads per draw, whatever the vocabulary."""
    size = len(probabilities)
    scaled = np.asarray(probabilities, dtype=np.float64) * size
    accept = np.ones(size)
    alias = np.arange(size, dtype=np.int32)
    small = [int(i) for i in np.flatnonzero(scaled < 1.0)]
    large = [int(i) for i in np.flatnonzero(scaled >= 1.0)]
    while small and large:
        low, high = small.pop(), large.pop()
        accept[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    # What is left is 1 up to rounding: those buckets keep their own word.
    return accept.astype(np.float32), alias


def context_windows(tokens, seed, window: int, keep=None):
    """(centres [N], contexts [N, 2 * window]) of a token batch (ids, -1 ending a sentence).

    Words are kept with probability `keep[id]` (None: all), then every kept word gets a
    reduced window of 1..`window` words each side within its sentence, as word2vec draws
    them; -1 fills the rest of its context row.
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    sentence = tf.cumsum(tf.cast(tokens < 0, tf.int32))
    kept = tokens >= 0
    if keep is not None:
        draw = tf.random.stateless_uniform(tf.shape(tokens), seeds[0])
        kept &= draw < tf.gather(tf.constant(keep, tf.float32), tf.maximum(tokens, 0))
    ids = tf.boolean_mask(tokens, kept)
    sentence = tf.boolean_mask(sentence, kept)
    count = tf.size(ids)
    reach = tf.random.stateless_uniform(
        [count], seeds[1], minval=1, maxval=window + 1, dtype=tf.int32
    )
    here = tf.range(count)
    columns = []
    for offset in [*range(-window, 0), *range(1, window + 1)]:
        there = here + offset
        inside = (there >= 0) & (there < count)
        there = tf.clip_by_value(there, 0, tf.maximum(count - 1, 0))
        valid = inside & (abs(offset) <= reach) & (tf.gather(sentence, there) == sentence)
        columns.append(tf.where(valid, tf.gather(ids, there), -1))
    return ids, tf.stack(columns, axis=1)
