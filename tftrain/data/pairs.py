"""Sentence pairs for seq2seq: the shared base that tokenises, encodes and buckets pairs.

Every pair goes through the tokenizer of `tftrain.preprocessing.text`, used both here to build
vocabularies and in the exported graph, so training and serving see identical tokens.
Vocabularies come from the training split (most frequent first, capped), with the ids
0 <pad>, 1 <unk>, 2 <s>, 3 </s>. Batches are bucketed by length with `tf.data`'s
`bucket_by_sequence_length` so padding stays small; the order is a pure function of
(seed, epoch) and `skip` drops whole batches, so a resumed run sees exactly the same data.
Readers of files are in `pair_files.py`, the built-in tasks in `synthetic_pairs.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tftrain.data.base import DataConfig, Dataset, DataSpec
from tftrain.errors import DataError
from tftrain.lazy import tf
from tftrain.preprocessing.text import BOS, EOS, SPECIALS, UNK, build_vocabulary, tokenize_texts
from tftrain.schema import FieldError, limits


@dataclass(frozen=True)
class PairsConfig(DataConfig):
    """Keys every sentence-pair dataset accepts: tokenisation, vocabularies, lengths, buckets."""

    lowercase: bool = True
    split_punctuation: bool = True  # false: split on whitespace only
    source_tokens: Literal["words", "characters"] = "words"
    target_tokens: Literal["words", "characters"] = "words"
    source_vocab_size: int = field(default=30000, metadata=limits(ge=5))
    target_vocab_size: int = field(default=30000, metadata=limits(ge=5))
    min_count: int = field(default=1, metadata=limits(ge=1))
    max_source_length: int | None = field(default=50, metadata=limits(ge=1))
    max_target_length: int | None = field(default=50, metadata=limits(ge=1))
    bucket_width: int = field(default=4, metadata=limits(ge=0))  # 0: no bucketing
    bucket_boundaries: tuple[int, ...] = ()  # explicit boundaries instead of bucket_width

    def __post_init__(self):
        if list(self.bucket_boundaries) != sorted(set(self.bucket_boundaries)):
            raise FieldError("bucket_boundaries", "must be strictly increasing")


_ENCODED_CACHE: dict = {}  # the last dataset encoded in this process (read-only afterwards)


@dataclass
class EncodedSplit:
    """One split as flat id arrays with row offsets, plus the text for decoding checks."""

    source: np.ndarray  # int32, all source ids concatenated
    source_splits: np.ndarray  # int64 row offsets, len = pairs + 1
    target: np.ndarray
    target_splits: np.ndarray
    source_text: list[str]
    target_tokens: list[list[str]]  # references for BLEU / exact match (no <unk>)

    def __len__(self) -> int:
        return len(self.source_text)

    def sources(self) -> list[np.ndarray]:
        return np.split(self.source, self.source_splits[1:-1])

    def head(self, count: int) -> EncodedSplit:
        """The first `count` pairs (for a quick evaluation)."""
        if count >= len(self):
            return self
        return EncodedSplit(
            source=self.source[: self.source_splits[count]],
            source_splits=self.source_splits[: count + 1],
            target=self.target[: self.target_splits[count]],
            target_splits=self.target_splits[: count + 1],
            source_text=self.source_text[:count],
            target_tokens=self.target_tokens[:count],
        )

    def lengths(self) -> np.ndarray:
        """Bucketing length of each pair: the longer of source and target (+ </s>)."""
        return np.maximum(np.diff(self.source_splits), np.diff(self.target_splits) + 1)


class PairsDataset(Dataset):
    """Base of the sentence-pair datasets: subclasses return raw text pairs per split."""

    Config = PairsConfig
    tasks = frozenset({"seq2seq"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._encoded: dict | None = None
        self._spec: DataSpec | None = None

    def raw_splits(self) -> dict[str, list[tuple[str, str]]]:
        raise NotImplementedError

    # --- text -> ids ---

    def tokenize_side(self, texts: list[str], side: str) -> list[list[str]]:
        return tokenize_texts(
            texts,
            lowercase=self.config.lowercase,
            split_punctuation=self.config.split_punctuation,
            characters=getattr(self.config, f"{side}_tokens") == "characters",
        )

    def vocabulary(self, sentences: list[list[str]], size: int) -> list[str]:
        return build_vocabulary(
            sentences, size=size, min_count=self.config.min_count, specials=SPECIALS
        )

    def encoded(self) -> dict[str, EncodedSplit]:
        if self._encoded is not None:
            return self._encoded
        key = (type(self).__name__, self.config, self.seed)
        if key in _ENCODED_CACHE:  # fit, resume, eval and export in one process read once
            self._encoded, self._vocabularies = _ENCODED_CACHE[key]
            return self._encoded
        cfg = self.config
        tokenized = {}
        for split, pairs in self.raw_splits().items():
            sources = self.tokenize_side([s for s, _ in pairs], "source")
            targets = self.tokenize_side([t for _, t in pairs], "target")
            keep = [
                i
                for i in range(len(pairs))
                if sources[i]
                and targets[i]
                and (cfg.max_source_length is None or len(sources[i]) <= cfg.max_source_length)
                and (cfg.max_target_length is None or len(targets[i]) <= cfg.max_target_length)
            ]
            tokenized[split] = (
                [pairs[i][0] for i in keep],
                [sources[i] for i in keep],
                [targets[i] for i in keep],
            )
        if not tokenized["train"][0]:
            raise DataError("no training pairs are left after the length filters")
        source_vocab = self.vocabulary(tokenized["train"][1], cfg.source_vocab_size)
        target_vocab = self.vocabulary(tokenized["train"][2], cfg.target_vocab_size)
        self._vocabularies = (source_vocab, target_vocab)
        source_ids = {t: i for i, t in enumerate(source_vocab)}
        target_ids = {t: i for i, t in enumerate(target_vocab)}
        self._encoded = {}
        for split, (texts, sources, targets) in tokenized.items():
            if not texts:
                continue
            source = [[source_ids.get(t, UNK) for t in s] for s in sources]
            target = [[target_ids.get(t, UNK) for t in s] for s in targets]
            self._encoded[split] = EncodedSplit(
                source=np.fromiter((i for s in source for i in s), np.int32),
                source_splits=np.cumsum([0] + [len(s) for s in source]).astype(np.int64),
                target=np.fromiter((i for s in target for i in s), np.int32),
                target_splits=np.cumsum([0] + [len(s) for s in target]).astype(np.int64),
                source_text=texts,
                target_tokens=targets,
            )
        _ENCODED_CACHE.clear()
        _ENCODED_CACHE[key] = (self._encoded, self._vocabularies)
        return self._encoded

    def split_data(self, split: str) -> EncodedSplit:
        self.check_split(split)
        if split not in self.encoded():
            raise DataError(f"this dataset has no {split!r} split")
        return self.encoded()[split]

    # --- the contract ---

    def spec(self) -> DataSpec:
        if self._spec is None:
            self.encoded()
            source_vocab, target_vocab = self._vocabularies
            cfg = self.config
            self._spec = DataSpec(
                task="seq2seq",
                input_shape=(None,),
                input_dtype="string",
                extra={
                    "source_vocabulary": source_vocab,
                    "target_vocabulary": target_vocab,
                    "lowercase": cfg.lowercase,
                    "split_punctuation": cfg.split_punctuation,
                    "source_tokens": cfg.source_tokens,
                    "target_tokens": cfg.target_tokens,
                },
            )
        return self._spec

    def num_examples(self, split: str) -> int | None:
        self.check_split(split)
        data = self.encoded().get(split)
        return len(data) if data is not None else 0

    def boundaries(self) -> list[int]:
        """Bucket boundaries: explicit, or every `bucket_width` up to the longest train pair."""
        if self.config.bucket_boundaries:
            return list(self.config.bucket_boundaries)
        width = self.config.bucket_width
        if width == 0:
            return []
        longest = int(self.split_data("train").lengths().max())
        return list(range(width + 1, longest + 1, width))

    def steps(self, split: str, batch_size: int, *, drop_remainder: bool = False) -> int | None:
        if not self.num_examples(split):
            return 0
        lengths = self.split_data(split).lengths()
        buckets = np.bincount(np.searchsorted(self.boundaries(), lengths, side="right"))
        if drop_remainder:
            return int(np.sum(buckets // batch_size)) or len(lengths) // batch_size
        return int(sum(math.ceil(n / batch_size) for n in buckets))

    def bucketed(self, split: str, batch_size: int, drop_remainder: bool) -> bool:
        """Bucket unless no bucket fills a whole batch that drop_remainder would keep."""
        if not self.boundaries():
            return False
        if not drop_remainder:
            return True
        lengths = self.split_data(split).lengths()
        buckets = np.bincount(np.searchsorted(self.boundaries(), lengths, side="right"))
        return bool(np.any(buckets >= batch_size))

    def batches(self, split, batch_size, *, epoch=0, skip=0, shuffle=False, drop_remainder=False):
        data = self.split_data(split)
        count = len(data)
        if shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(count)
        else:
            order = np.arange(count)
        source = tf.constant(data.source)
        source_splits = tf.constant(data.source_splits)
        target = tf.constant(data.target)
        target_splits = tf.constant(data.target_splits)

        def pair(index):
            source_ids = source[source_splits[index] : source_splits[index + 1]]
            target_ids = target[target_splits[index] : target_splits[index + 1]]
            features = {
                "source": source_ids,
                "target_in": tf.concat([[BOS], target_ids], 0),
            }
            return features, tf.concat([target_ids, [EOS]], 0)

        def length(features, labels):
            return tf.maximum(tf.size(features["source"]), tf.size(labels))

        pairs = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).map(
            pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        shapes = ({"source": [None], "target_in": [None]}, [None])
        boundaries = self.boundaries()
        if self.bucketed(split, batch_size, drop_remainder):
            batched = pairs.bucket_by_sequence_length(
                length,
                bucket_boundaries=boundaries,
                bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
                padded_shapes=shapes,
                drop_remainder=drop_remainder,
            )
        else:
            batched = pairs.padded_batch(batch_size, shapes, drop_remainder=drop_remainder)
        return batched.skip(skip).prefetch(tf.data.AUTOTUNE)
