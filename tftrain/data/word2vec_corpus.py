"""Streaming text corpora for word2vec: vocabulary in one pass, token-id batches.

The text is read in blocks of about `block_chars` characters, cut at a line end (or, for one
huge line such as text8, at a space), so memory stays bounded whatever the corpus size. Each
block becomes the ids of its in-vocabulary words in text order, with -1 after each sentence
(a line, or `max_sentence_length` words of one). A batch holds exactly `batch_size` words
(the last one fewer), so a batch is counted in words and the loop's examples/second is
words/second, as gensim counts. What a model makes of the words (sub-sampling, context
windows, pairs) is its own business: word2vec's fused kernel does all of it in C++.

Shuffling permutes the sentences within each block, seeded by (seed, epoch, block); each
batch carries a seed of (seed, epoch, batch index) for the model's random draws. So the batch
order is a pure function of (seed, epoch) and `skip` resumes exactly.
"""

from __future__ import annotations

import collections
import itertools
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


class WordCorpus(Dataset):
    """Base of the word2vec corpora: subclasses say where each split's text comes from."""

    Config = CorpusConfig
    task = "word_embedding"
    tasks = frozenset({"word_embedding"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._spec: DataSpec | None = None
        self._index: dict | None = None

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
        return DataSpec(
            task=self.task,
            input_shape=(),
            input_dtype="int32",
            vocabulary=words,
            extra={
                "counts": [int(c) for c in word_counts],
                "corpus_tokens": int(tokens),
                "split_words": split_words,
                "sample": config.sample,
                "window": config.window,
                "lower": config.lower,
                **self.spec_extra(),
            },
            throughput_unit="words",
        )

    def num_examples(self, split: str) -> int | None:
        """In-vocabulary words per pass (before any sub-sampling: the model does that)."""
        self.check_split(split)
        return self.spec().extra["split_words"].get(split, 0)

    def word_index(self) -> dict:
        if self._index is None:
            self._index = {word: i for i, word in enumerate(self.spec().vocabulary)}
        return self._index

    # --- the pipeline --------------------------------------------------------------------

    def batches(self, split, batch_size, *, epoch=0, skip=0, shuffle=False, drop_remainder=False):
        self.check_split(split)
        if self.split_blocks(split) is None:
            raise DataError(f"this corpus has no {split!r} split")
        seed, epoch = self.seed, int(epoch)
        index = self.word_index()
        length = self.config.max_sentence_length
        lower = self.config.lower

        def sentences():
            for number, block in enumerate(self.split_blocks(split)):
                ids = token_ids(block.lower() if lower else block, index, length)
                if shuffle:
                    rng = np.random.default_rng([seed, _BLOCK_SALT, epoch, number])
                    ids = shuffled_sentences(ids, rng)
                yield ids

        def elements():
            batched = word_batches(sentences(), batch_size, drop_remainder=drop_remainder)
            for number, tokens in enumerate(batched):
                if number < skip:
                    continue
                batch_seed = np.array([seed * _BATCH_SALT + epoch, number], np.int64)
                yield {"tokens": tokens, "seed": batch_seed}, tokens

        tokens = tf.TensorSpec([None], tf.int32)
        signature = ({"tokens": tokens, "seed": tf.TensorSpec([2], tf.int64)}, tokens)
        # Python makes the ids (a dict lookup per word, about 0.1 s per million words) on
        # tf.data's thread while the model trains on the previous batch.
        return tf.data.Dataset.from_generator(elements, output_signature=signature).prefetch(2)


def token_ids(text: str, index: dict, max_length: int) -> np.ndarray:
    """Ids of the in-vocabulary words of `text` in order, and -1 after each sentence: a line,
    or `max_length` words of one (out-of-vocabulary words count, as in gensim)."""
    ids: list = []
    ends = []
    missing = itertools.repeat(-2)
    for line in text.split("\n"):
        words = line.split()
        for start in range(0, len(words), max_length):
            ids.extend(map(index.get, words[start : start + max_length], missing))
            ends.append(len(ids))
    array = np.insert(np.array(ids, np.int32), np.array(ends, np.int64), -1)
    return array[array != -2]


def shuffled_sentences(ids: np.ndarray, rng) -> np.ndarray:
    """`ids` (sentences ended by -1) with the sentences in a random order."""
    sentences = np.split(ids, np.flatnonzero(ids == -1) + 1)
    if len(sentences) < 2:
        return ids
    order = rng.permutation(len(sentences))
    return np.concatenate([sentences[i] for i in order])


def word_batches(pieces, batch_size: int, *, drop_remainder: bool) -> Iterator[np.ndarray]:
    """Cuts a stream of id arrays into batches of exactly `batch_size` words (ids >= 0; the
    -1 sentence ends ride along), the last one fewer unless `drop_remainder`."""
    pending = np.empty(0, np.int32)
    for piece in pieces:
        pending = np.concatenate([pending, piece])
        words = np.flatnonzero(pending >= 0)
        cuts = words[batch_size - 1 :: batch_size] + 1
        start = 0
        for cut in cuts:
            yield pending[start:cut]
            start = cut
        pending = pending[start:]
    if not drop_remainder and np.any(pending >= 0):
        yield pending


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
