"""Sentence pairs for seq2seq: TSV / aligned files / zip members, and built-in reverse and dates.

Every pair goes through one tokenizer written in `tf.strings` ops (`tokenize`), used both here to
build vocabularies and in the exported graph, so training and serving see identical tokens.
Vocabularies come from the training split (most frequent first, capped), with the ids
0 <pad>, 1 <unk>, 2 <s>, 3 </s>. Batches are bucketed by length with `tf.data`'s
`bucket_by_sequence_length` so padding stays small; the order is a pure function of
(seed, epoch) and `skip` drops whole batches, so a resumed run sees exactly the same data.
"""

from __future__ import annotations

import calendar
import datetime
import math
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tftrain.data.base import DataConfig, Dataset, DataSpec, resolve_file
from tftrain.errors import ConfigError, DataError
from tftrain.lazy import tf
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
SPACE = "\u2581"  # stands for a space in character-level token sequences
PUNCTUATION = r"([\pP\pS])"


# --- tokenisation (TensorFlow ops, shared with the exported graph) ------------------------


def tokenize(texts, *, lowercase: bool, split_punctuation: bool, characters: bool):
    """A 1-D string tensor -> a RaggedTensor of token strings."""
    texts = tf.strings.strip(tf.strings.regex_replace(texts, r"\s+", " "))
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    if characters:
        texts = tf.strings.regex_replace(texts, " ", SPACE)
        return tf.strings.unicode_split(texts, "UTF-8")
    if split_punctuation:
        texts = tf.strings.regex_replace(texts, PUNCTUATION, r" \1 ")
    return tf.strings.split(texts)


def join_tokens(tokens: list[str], characters: bool) -> str:
    """Tokens -> text: characters are concatenated, words joined by spaces."""
    if characters:
        return "".join(tokens).replace(SPACE, " ")
    return " ".join(tokens)


# --- configs ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class SentencePairsConfig(PairsConfig):
    path: str = ""  # source<TAB>target[<TAB>attribution] lines; .zip: read `member`
    member: str | None = None  # the file inside a .zip (default: its only .txt file)
    source_path: str = ""  # or two aligned files, one sentence per line
    target_path: str = ""
    swap: bool = False  # translate the second column into the first
    max_pairs: int | None = field(default=None, metadata=limits(ge=1))  # first N pairs only
    valid_fraction: float = field(default=0.05, metadata=limits(ge=0, lt=1))
    test_fraction: float = field(default=0.05, metadata=limits(ge=0, lt=1))
    valid_count: int | None = field(default=None, metadata=limits(ge=0))
    test_count: int | None = field(default=None, metadata=limits(ge=0))

    def __post_init__(self):
        super().__post_init__()
        if not self.path and not (self.source_path and self.target_path):
            raise FieldError("path", "set 'path' (a TSV) or both 'source_path' and 'target_path'")
        if self.path and (self.source_path or self.target_path):
            raise FieldError("path", "set either 'path' or 'source_path'/'target_path', not both")


@dataclass(frozen=True)
class SyntheticPairsConfig(PairsConfig):
    task: Literal["reverse", "dates"] = "dates"
    num_train: int = field(default=20000, metadata=limits(ge=1))
    num_valid: int = field(default=1000, metadata=limits(ge=0))
    num_test: int = field(default=1000, metadata=limits(ge=0))
    min_length: int = field(default=3, metadata=limits(ge=1))  # reverse: tokens per sequence
    max_length: int = field(default=12, metadata=limits(ge=1))
    alphabet_size: int = field(default=20, metadata=limits(ge=2, le=26))

    def __post_init__(self):
        super().__post_init__()
        if self.min_length > self.max_length:
            raise FieldError("min_length", "must not exceed max_length")


# --- reading files ------------------------------------------------------------------------


def read_lines(path: Path, member: str | None = None) -> tuple[str, list[str]]:
    """(display name, lines) of a UTF-8 text file or a .zip member; bad bytes name the line."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if member is None:
                    texts = [n for n in names if n.endswith(".txt") and "/_" not in "/" + n]
                    if len(texts) != 1:
                        raise ConfigError(
                            f"config error: {path} holds {len(texts)} .txt files "
                            f"({', '.join(texts[:5])}); set data.member to the one to read"
                        )
                    member = texts[0]
                if member not in names:
                    raise ConfigError(
                        f"config error: {path} has no member {member!r} "
                        f"(members: {', '.join(names[:10])})"
                    )
                raw = archive.read(member)
            name = f"{path}:{member}"
        else:
            raw = path.read_bytes()
            name = str(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(
                f"{name}, line {number}: invalid UTF-8 (byte 0x{line[error.start]:02x} at "
                f"column {error.start + 1}); convert the file to UTF-8"
            ) from None
    return name, decoded


def check_sentence(text: str, name: str, number: int, what: str) -> str:
    if not text.strip():
        raise DataError(f"{name}, line {number}: empty {what} sentence; remove the line")
    return text


def read_tsv_pairs(path: Path, member: str | None = None) -> list[tuple[str, str]]:
    name, lines = read_lines(path, member)
    pairs = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            what = "an empty line" if not line.strip() else "no tab"
            raise DataError(
                f"{name}, line {number}: expected 'source<TAB>target[<TAB>attribution]', "
                f"found {what}"
            )
        source = check_sentence(fields[0], name, number, "source")
        target = check_sentence(fields[1], name, number, "target")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{name} holds no sentence pairs")
    return pairs


def read_aligned_pairs(source_path: Path, target_path: Path) -> list[tuple[str, str]]:
    source_name, sources = read_lines(source_path)
    target_name, targets = read_lines(target_path)
    if len(sources) != len(targets):
        shorter, longer = (
            (source_name, target_name)
            if len(sources) < len(targets)
            else (target_name, source_name)
        )
        line = min(len(sources), len(targets)) + 1
        raise DataError(
            f"misaligned files: {source_name} has {len(sources)} lines but {target_name} has "
            f"{len(targets)}; line {line} of {longer} has no partner in {shorter}"
        )
    pairs = []
    for number, (source, target) in enumerate(zip(sources, targets, strict=True), start=1):
        check_sentence(source, source_name, number, "source")
        check_sentence(target, target_name, number, "target")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{source_name} holds no sentences")
    return pairs


# --- synthetic tasks ----------------------------------------------------------------------

MONTHS = [m.lower() for m in calendar.month_name[1:]]
DAYS = [d.lower() for d in calendar.day_name]
FIRST_DATE = datetime.date(1950, 1, 1)
DATE_SPAN = (datetime.date(2049, 12, 31) - FIRST_DATE).days + 1


def ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_forms(d: datetime.date) -> list[str]:
    """Surface forms of one date (day-first for numeric forms)."""
    month, short, day = MONTHS[d.month - 1], MONTHS[d.month - 1][:3], d.day
    weekday = DAYS[d.weekday()]
    return [
        f"the {ordinal(day)} of {month} {d.year}",
        f"{month} {day}, {d.year}",
        f"{day} {month} {d.year}",
        f"{day:02d}/{d.month:02d}/{d.year}",
        f"{short} {day} {d.year}",
        f"{ordinal(day)} {month} {d.year}",
        f"{weekday}, {month} {day}, {d.year}",
        f"{d.year} {month} {day}",
        f"{month} the {ordinal(day)}, {d.year}",
        f"{day}.{d.month}.{d.year}",
        f"{weekday[:3]} {day} {short} {d.year}",
        f"{month.capitalize()} {ordinal(day)} {d.year}",
    ]


FORMS_PER_DATE = len(date_forms(FIRST_DATE))


def date_pairs(rng, count: int) -> list[tuple[str, str]]:
    """`count` distinct (surface form, ISO date) pairs."""
    count = min(count, DATE_SPAN * FORMS_PER_DATE)
    picks = rng.choice(DATE_SPAN * FORMS_PER_DATE, size=count, replace=False)
    pairs = []
    for pick in picks:
        d = FIRST_DATE + datetime.timedelta(days=int(pick // FORMS_PER_DATE))
        pairs.append((date_forms(d)[pick % FORMS_PER_DATE], d.isoformat()))
    return pairs


def reverse_pairs(rng, count: int, config: SyntheticPairsConfig) -> list[tuple[str, str]]:
    letters = [chr(ord("a") + i) for i in range(config.alphabet_size)]
    pairs = []
    for _ in range(count):
        size = int(rng.integers(config.min_length, config.max_length + 1))
        tokens = [letters[i] for i in rng.integers(0, len(letters), size)]
        pairs.append((" ".join(tokens), " ".join(reversed(tokens))))
    return pairs


# --- the datasets -------------------------------------------------------------------------


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

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._encoded: dict | None = None
        self._spec: DataSpec | None = None

    def raw_splits(self) -> dict[str, list[tuple[str, str]]]:
        raise NotImplementedError

    # --- text -> ids ---

    def tokenize_texts(self, texts: list[str], side: str) -> list[list[str]]:
        characters = getattr(self.config, f"{side}_tokens") == "characters"
        tokens = []
        for start in range(0, len(texts), 20000):
            ragged = tokenize(
                tf.constant(texts[start : start + 20000]),
                lowercase=self.config.lowercase,
                split_punctuation=self.config.split_punctuation,
                characters=characters,
            )
            tokens += [[t.decode("utf-8") for t in row] for row in ragged.to_list()]
        return tokens

    @staticmethod
    def build_vocabulary(sentences: list[list[str]], size: int, min_count: int) -> list[str]:
        counts = Counter(token for sentence in sentences for token in sentence)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted(
            (token for token, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t)
        )
        return SPECIALS + ranked[: size - len(SPECIALS)]

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
            sources = self.tokenize_texts([s for s, _ in pairs], "source")
            targets = self.tokenize_texts([t for _, t in pairs], "target")
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
        source_vocab = self.build_vocabulary(
            tokenized["train"][1], cfg.source_vocab_size, cfg.min_count
        )
        target_vocab = self.build_vocabulary(
            tokenized["train"][2], cfg.target_vocab_size, cfg.min_count
        )
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


@datasets.register("sentence_pairs")
class SentencePairs(PairsDataset):
    """Sentence pairs from a TSV (Tatoeba/Anki format, plain or in a .zip) or two aligned files."""

    Config = SentencePairsConfig
    description = "sentence pairs: source<TAB>target file (or .zip member) or two aligned files"

    def raw_splits(self):
        cfg = self.config
        if cfg.path:
            pairs = read_tsv_pairs(resolve_file(cfg.path, "data.path"), cfg.member)
        else:
            pairs = read_aligned_pairs(
                resolve_file(cfg.source_path, "data.source_path"),
                resolve_file(cfg.target_path, "data.target_path"),
            )
        if cfg.max_pairs:
            pairs = pairs[: cfg.max_pairs]
        if cfg.swap:
            pairs = [(t, s) for s, t in pairs]
        order = np.random.default_rng(self.seed).permutation(len(pairs))
        test = (
            cfg.test_count if cfg.test_count is not None else round(len(pairs) * cfg.test_fraction)
        )
        valid = (
            cfg.valid_count
            if cfg.valid_count is not None
            else round(len(pairs) * cfg.valid_fraction)
        )
        if test + valid >= len(pairs):
            raise ConfigError(
                f"config error: valid ({valid}) and test ({test}) pairs leave no training pairs "
                f"out of {len(pairs)}"
            )
        # Held-out pairs are taken at random; training keeps the file's order (then shuffled
        # per epoch by `batches`).
        held_test, held_valid = order[:test], order[test : test + valid]
        train = np.sort(order[test + valid :])
        return {
            "train": [pairs[i] for i in train],
            "valid": [pairs[i] for i in held_valid],
            "test": [pairs[i] for i in held_test],
        }


@datasets.register("synthetic_pairs")
class SyntheticPairs(PairsDataset):
    """Built-in seq2seq tasks, generated from the seed: token reversal and date formats."""

    Config = SyntheticPairsConfig
    description = "synthetic seq2seq tasks: 'reverse' tokens, 'dates' to ISO format (offline)"

    def raw_splits(self):
        cfg = self.config
        rng = np.random.default_rng([self.seed, 7])
        total = cfg.num_train + cfg.num_valid + cfg.num_test
        if cfg.task == "dates":
            pairs = date_pairs(rng, total)  # distinct pairs: no test pair is seen in training
        else:
            pairs = reverse_pairs(rng, total, cfg)
        if len(pairs) < total:
            raise ConfigError(f"config error: the dates task has only {len(pairs)} distinct pairs")
        return {
            "train": pairs[: cfg.num_train],
            "valid": pairs[cfg.num_train : cfg.num_train + cfg.num_valid],
            "test": pairs[cfg.num_train + cfg.num_valid :],
        }
