"""Streaming text corpora for word2vec: vocabulary in one pass, context windows in `tf.data`.

The text is read in blocks of about `block_chars` characters, cut at a line end (or, for one
huge line such as text8, at a space), so memory stays bounded whatever the corpus size. Each
block is tokenised, looked up, sub-sampled and turned into context windows by vectorised
TensorFlow ops in a parallel `map`: one example per kept centre word, with its context words
in a `[2 * window]` row (-1 where the random reduced window or the sentence ends). Skip-gram
pairs and CBOW inputs are both made from these rows by the model, so a batch is counted in
words and the loop's examples/second is words/second.

Every random choice (sub-sampling, reduced windows, the shuffle within a block, the seed the
model draws negatives from) uses stateless ops seeded by (seed, epoch, block or batch index),
so the batch order is a pure function of (seed, epoch) and `skip` resumes exactly.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tftrain.data.base import DataConfig, Dataset, DataSpec, require_path, resolve_file
from tftrain.errors import DataError
from tftrain.lazy import tf
from tftrain.registry import datasets
from tftrain.schema import limits

# Salts that keep the streams of random numbers apart.
_BLOCK_SALT, _BATCH_SALT = 7919, 104729


@dataclass(frozen=True)
class CorpusConfig(DataConfig):
    """Keys shared by the word2vec corpora."""

    lower: bool = False
    min_count: int = field(default=5, metadata=limits(ge=1))
    max_vocab: int | None = field(default=None, metadata=limits(ge=1))
    sample: float = field(default=1e-3, metadata=limits(ge=0))
    window: int = field(default=5, metadata=limits(ge=1, le=50))
    max_sentence_length: int = field(default=10000, metadata=limits(ge=2))
    block_chars: int = field(default=1 << 19, metadata=limits(ge=64))


def read_blocks(path, block_chars: int) -> Iterator[str]:
    """Text of a file in blocks of about `block_chars`, cut after a newline or a space."""
    carry = ""
    with open(path, encoding="utf-8") as handle:
        while True:
            text = handle.read(block_chars)
            if not text:
                break
            text = carry + text
            cut = text.rfind("\n") + 1 or text.rfind(" ") + 1
            if cut == 0:  # a single word longer than a block: keep reading
                carry = text
                continue
            carry = text[cut:]
            yield text[:cut]
    if carry.strip():
        yield carry


def count_words(blocks, *, lower: bool, where: str) -> tuple[collections.Counter, int]:
    """Word counts of a stream of text blocks, and the number of tokens, in one pass."""
    counts: collections.Counter = collections.Counter()
    try:
        for block in blocks:
            counts.update((block.lower() if lower else block).split())
    except UnicodeDecodeError as error:
        raise DataError(
            f"{where} is not valid UTF-8 (byte {error.start} of a block: {error.reason})"
        ) from None
    return counts, sum(counts.values())


def build_vocabulary(counts, *, min_count: int, max_vocab: int | None) -> tuple[list, list]:
    """Words with at least `min_count` occurrences, most frequent first (ties by word)."""
    kept = sorted(
        ((c, w) for w, c in counts.items() if c >= min_count), key=lambda p: (-p[0], p[1])
    )
    if max_vocab:
        kept = kept[:max_vocab]
    return [w for _, w in kept], [c for c, _ in kept]


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """word2vec's sub-sampling: P(keep) = (sqrt(f / t) + 1) * t / f, t = sample * total."""
    counts = np.asarray(counts, dtype=np.float64)
    if not sample:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


class WordCorpus(Dataset):
    """Base of the word2vec corpora: subclasses say where each split's text comes from."""

    Config = CorpusConfig
    task = "word_embedding"
    tasks = frozenset({"word_embedding"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._spec: DataSpec | None = None
        self._table = None

    # Subclasses implement these two.
    def split_blocks(self, split: str) -> Iterator[str] | None:
        """The split's text as blocks, or None when the corpus has no such split."""
        raise NotImplementedError

    def spec_extra(self) -> dict:
        return {}

    def where(self, split: str) -> str:
        return f"the {split} split"

    # --- the vocabulary ------------------------------------------------------------------

    def spec(self) -> DataSpec:
        if self._spec is None:
            self._spec = self.build_spec()
        return self._spec

    def build_spec(self) -> DataSpec:
        config = self.config
        counts, tokens = count_words(
            self.split_blocks("train"), lower=config.lower, where=self.where("train")
        )
        words, word_counts = build_vocabulary(
            counts, min_count=config.min_count, max_vocab=config.max_vocab
        )
        if len(words) < 2:
            raise DataError(
                f"{self.where('train')} has {len(words)} words occurring at least "
                f"min_count={config.min_count} times; lower data.min_count"
            )
        index = {w: i for i, w in enumerate(words)}
        split_words = {"train": int(sum(word_counts))}
        for split in ("valid", "test"):
            blocks = self.split_blocks(split)
            if blocks is not None:
                held_out, _ = count_words(blocks, lower=config.lower, where=self.where(split))
                split_words[split] = int(sum(c for w, c in held_out.items() if w in index))
        keep = keep_probabilities(word_counts, config.sample)
        return DataSpec(
            task=self.task,
            input_shape=(),
            input_dtype="int32",
            vocabulary=words,
            extra={
                "counts": [int(c) for c in word_counts],
                "corpus_tokens": int(tokens),
                "split_words": split_words,
                "expected_train_words": float(np.dot(keep, word_counts)),
                "window": config.window,
                "lower": config.lower,
                **self.spec_extra(),
            },
            throughput_unit="words",
        )

    def num_examples(self, split: str) -> int | None:
        """Centre words per pass. For train with sub-sampling this is the expected number
        (sub-sampling is random; the count varies by a few hundredths of a percent)."""
        self.check_split(split)
        extra = self.spec().extra
        if split == "train" and self.config.sample:
            return max(1, round(extra["expected_train_words"]))
        return extra["split_words"].get(split, 0)

    # --- the pipeline --------------------------------------------------------------------

    def lookup_table(self):
        if self._table is None:
            words = self.spec().vocabulary
            initializer = tf.lookup.KeyValueTensorInitializer(
                tf.constant(words), tf.range(len(words), dtype=tf.int32)
            )
            self._table = tf.lookup.StaticHashTable(initializer, default_value=-1)
        return self._table

    def batches(self, split, batch_size, *, epoch=0, skip=0, shuffle=False, drop_remainder=False):
        self.check_split(split)
        if self.split_blocks(split) is None:
            raise DataError(f"this corpus has no {split!r} split")
        config = self.config
        spec = self.spec()
        sample = config.sample if split == "train" else 0.0
        keep = tf.constant(keep_probabilities(spec.extra["counts"], sample), tf.float32)
        table = self.lookup_table()
        window, lower, max_length = config.window, config.lower, config.max_sentence_length
        seed = tf.constant(self.seed, tf.int64)
        epoch = tf.constant(epoch, tf.int64)

        def windows(index, block):
            block_seed = tf.stack([seed * _BLOCK_SALT + epoch, index])
            seeds = tf.random.experimental.stateless_split(block_seed, 3)
            lines = tf.strings.split(block, "\n")
            if lower:
                lines = tf.strings.lower(lines, encoding="utf-8")
            tokens = tf.strings.split(lines)
            ids = table.lookup(tokens.flat_values)
            rows = tokens.value_rowids()
            position = tf.range(tf.size(ids, out_type=tf.int64)) - tf.gather(
                tokens.row_starts(), rows
            )
            sentence = rows * (2**40) + position // max_length
            kept = ids >= 0
            if sample:
                draw = tf.random.stateless_uniform(tf.shape(ids), seeds[0])
                kept &= draw < tf.gather(keep, tf.maximum(ids, 0))
            ids = tf.boolean_mask(ids, kept)
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
                valid = inside & (abs(offset) <= reach)
                valid &= tf.gather(sentence, there) == sentence
                columns.append(tf.where(valid, tf.gather(ids, there), -1))
            context = tf.stack(columns, axis=1) if columns else tf.zeros([count, 0], tf.int32)
            if shuffle:
                order = tf.argsort(tf.random.stateless_uniform([count], seeds[2]))
                ids, context = tf.gather(ids, order), tf.gather(context, order)
            return {"center": ids, "context": context}

        def add_seed(index, features):
            batch_seed = tf.stack([seed * _BATCH_SALT + epoch, index])
            features = {**features, "seed": batch_seed}
            return features, features["center"]

        blocks = tf.data.Dataset.from_generator(
            lambda: self.split_blocks(split), output_signature=tf.TensorSpec([], tf.string)
        )
        return (
            blocks.enumerate()
            .map(windows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .rebatch(batch_size, drop_remainder=drop_remainder)
            .enumerate()
            .skip(skip)
            .map(add_seed)
            .prefetch(tf.data.AUTOTUNE)
        )


@dataclass(frozen=True)
class TextCorpusConfig(CorpusConfig):
    path: str = ""
    valid_path: str = ""
    test_path: str = ""

    def __post_init__(self):
        require_path(self.path, "path")


@datasets.register("text_corpus")
class TextCorpus(WordCorpus):
    """A plain UTF-8 text file (one sentence per line, or one huge line like text8)."""

    Config = TextCorpusConfig
    description = "word2vec corpus from a plain text file, streamed (PTB, text8, ...)"

    def _path(self, split: str):
        key = {"train": "path", "valid": "valid_path", "test": "test_path"}[split]
        value = getattr(self.config, key)
        return resolve_file(value, f"data.{key}") if value else None

    def where(self, split: str) -> str:
        return str(self._path(split))

    def split_blocks(self, split: str):
        path = self._path(split)
        if path is None:
            return None
        return read_blocks(path, self.config.block_chars)


@dataclass(frozen=True)
class GroupedWordsConfig(CorpusConfig):
    """Sentences from a little grammar: each sentence is about one topic group."""

    min_count: int = field(default=1, metadata=limits(ge=1))
    sample: float = field(default=0.0, metadata=limits(ge=0))
    groups: int = field(default=6, metadata=limits(ge=2))
    words_per_group: int = field(default=10, metadata=limits(ge=2))
    sentences: int = field(default=4000, metadata=limits(ge=10))
    held_out_sentences: int = field(default=200, metadata=limits(ge=0))
    sentence_length: int = field(default=8, metadata=limits(ge=3))


FUNCTION_WORDS = ("the", "a", "of", "and", "to")
GROUP_NAMES = ("animal", "color", "city", "tool", "food", "sport", "tree", "metal", "fish", "star")


@datasets.register("grouped_words")
class GroupedWords(WordCorpus):
    """Built-in synthetic corpus whose words come in known groups (a topic grammar).

    A sentence picks one group and alternates function words ("the", "of", ...) with words of
    that group, so words of a group share their contexts and good embeddings cluster by group.
    The group of every word is saved in the data spec (`extra["groups"]`).
    """

    Config = GroupedWordsConfig
    description = "synthetic sentences whose words come in known topic groups (offline)"

    def group_words(self) -> list[list[str]]:
        config = self.config
        names = [
            GROUP_NAMES[g % len(GROUP_NAMES)] + ("" if g < len(GROUP_NAMES) else str(g))
            for g in range(config.groups)
        ]
        return [[f"{name}{i}" for i in range(config.words_per_group)] for name in names]

    def spec_extra(self) -> dict:
        return {"groups": {w: g for g, words in enumerate(self.group_words()) for w in words}}

    def split_blocks(self, split: str):
        config = self.config
        count = config.sentences if split == "train" else config.held_out_sentences
        if not count:
            return None
        salt = {"train": 1, "valid": 2, "test": 3}[split]
        return self._sentences(count, np.random.default_rng([self.seed, salt]))

    def _sentences(self, count: int, rng) -> Iterator[str]:
        config, groups = self.config, self.group_words()
        lines = []
        for _ in range(count):
            words = groups[rng.integers(len(groups))]
            length = config.sentence_length
            picks = rng.integers(len(words), size=length)
            fillers = rng.integers(len(FUNCTION_WORDS), size=length)
            use_filler = rng.random(length) < 0.3
            lines.append(
                " ".join(
                    FUNCTION_WORDS[f] if filler else words[p]
                    for p, f, filler in zip(picks, fillers, use_filler, strict=True)
                )
            )
            if len(lines) == 2000:
                yield "\n".join(lines) + "\n"
                lines = []
        if lines:
            yield "\n".join(lines) + "\n"


def nearest_neighbour_purity(vectors, words: list, groups: dict, k: int = 5) -> float:
    """Mean fraction of each grouped word's k nearest neighbours (cosine) in its own group."""
    index = [i for i, w in enumerate(words) if w in groups]
    unit = vectors[index] / np.maximum(np.linalg.norm(vectors[index], axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -math.inf)
    labels = np.array([groups[words[i]] for i in index])
    top = np.argsort(-similarity, axis=1)[:, :k]
    return float(np.mean(labels[top] == labels[:, None]))
