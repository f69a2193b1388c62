"""Word-level text corpora for language models: PTB-style files and a synthetic language.

Both lay token ids out exactly as the TensorFlow PTB tutorial's `ptb_producer` does: the
split's id stream is cut into `batch_size` contiguous rows (`[batch_size, batch_len]`), and
batch `i` is `x = rows[:, i*num_steps:(i+1)*num_steps]`, `y` the same shifted by one word. So
row `r` of batch `i + 1` continues row `r` of batch `i`, which is what lets a language model
carry its LSTM state from one batch to the next (truncated back-propagation through time).
The order never depends on `shuffle` (shuffling would break the carried state); `skip` drops
whole batches so a resumed epoch continues exactly where it stopped.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tftrain.data.base import DataConfig, Dataset, DataSpec, resolve_file
from tftrain.errors import ConfigError, DataError
from tftrain.lazy import tf
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits

EOS = "<eos>"
UNK = "<unk>"


# --- reading text -------------------------------------------------------------------------


def read_lines(path: Path):
    """Yield the decoded lines of a UTF-8 file, streaming; DataError names the byte offset."""
    offset = 0
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise DataError(
                        f"{path} is not valid UTF-8: byte offset {offset + error.start} "
                        f"(line {number}): {error.reason}; re-encode the file as UTF-8"
                    ) from None
                offset += len(raw)
    except OSError as error:
        raise DataError(f"cannot read text file {path}: {error}") from None


def read_words(path: Path, *, eos: str = EOS, lowercase: bool = False):
    """Yield the words of a file, with `eos` after every line (as the tutorial's reader)."""
    for line in read_lines(path):
        if lowercase:
            line = line.lower()
        yield from line.split()
        if eos:
            yield eos


def build_vocabulary(counts: Counter, vocab_size: int, unk: str = UNK) -> list[str]:
    """Words by falling frequency (ties alphabetical), capped at `vocab_size` with `unk`.

    When every word fits, the order is exactly the tutorial's `_build_vocab`, so ids match it.
    `unk` is always present (appended if the training text never used it).
    """
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    if unk in words[:vocab_size]:
        return words[:vocab_size]
    return [w for w in words if w != unk][: vocab_size - 1] + [unk]


def producer_layout(ids: np.ndarray, batch_size: int, num_steps: int):
    """(x, y) of shape [epoch_size, batch_size, num_steps], laid out as `ptb_producer`."""
    batch_len = len(ids) // batch_size
    data = np.asarray(ids[: batch_size * batch_len], dtype=np.int32).reshape(batch_size, batch_len)
    epoch_size = (batch_len - 1) // num_steps
    if epoch_size <= 0:
        return (np.zeros((0, batch_size, num_steps), np.int32),) * 2
    span = epoch_size * num_steps
    x = data[:, :span].reshape(batch_size, epoch_size, num_steps).transpose(1, 0, 2)
    y = data[:, 1 : span + 1].reshape(batch_size, epoch_size, num_steps).transpose(1, 0, 2)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


# --- the shared language-model dataset ----------------------------------------------------


@dataclass(frozen=True)
class LanguageModelConfig(DataConfig):
    """Keys of every language-model corpus: the batch layout's sequence length."""

    num_steps: int = field(default=20, metadata=limits(ge=1))  # words per row per batch (BPTT)
    eval_num_steps: int | None = field(default=None, metadata=limits(ge=1))  # valid/test


class LanguageModelData(Dataset):
    """Token-id streams per split, served in the tutorial's batch layout."""

    Config = LanguageModelConfig
    tasks = frozenset({"language_model"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._ids: dict | None = None
        self._spec: DataSpec | None = None
        self.last_batch_size: dict = {}  # split -> batch size of its last pipeline

    # Subclasses implement these two.
    def load_ids(self) -> tuple[dict, list[str]]:
        """({split: int32 id stream}, vocabulary)."""
        raise NotImplementedError

    def spec_extra(self) -> dict:
        return {}

    @property
    def ids(self) -> dict:
        if self._ids is None:
            self._ids, self._vocabulary = self.load_ids()
        return self._ids

    def num_steps(self, split: str) -> int:
        if split != "train" and self.config.eval_num_steps:
            return self.config.eval_num_steps
        return self.config.num_steps

    def spec(self) -> DataSpec:
        if self._spec is None:
            self.ids  # noqa: B018  (loads the vocabulary)
            vocabulary = self._vocabulary
            self._spec = DataSpec(
                task="language_model",
                input_shape=(self.config.num_steps,),
                input_dtype="int32",
                num_classes=len(vocabulary),
                vocabulary=list(vocabulary),
                extra={
                    "eos": EOS if EOS in vocabulary else None,
                    "unk": UNK if UNK in vocabulary else None,
                    "num_steps": self.config.num_steps,
                    **self.spec_extra(),
                },
                throughput_unit="words",
                units_per_example=self.config.num_steps,
            )
        return self._spec

    def num_examples(self, split: str) -> int | None:
        """Words (token ids) in the split; 0 when the split is absent."""
        self.check_split(split)
        ids = self.ids.get(split)
        return 0 if ids is None else len(ids)

    def steps(self, split: str, batch_size: int, *, drop_remainder: bool = False) -> int | None:
        count = self.num_examples(split)
        batch_len = count // batch_size
        return max(0, (batch_len - 1) // self.num_steps(split))

    def layout(self, split: str, batch_size: int):
        self.check_split(split)
        if split not in self.ids:
            raise DataError(f"this corpus has no {split!r} split")
        num_steps = self.num_steps(split)
        x, y = producer_layout(self.ids[split], batch_size, num_steps)
        if len(x) == 0:
            raise DataError(
                f"the {split!r} split has {len(self.ids[split])} words, too few for one batch "
                f"of batch_size {batch_size} x num_steps {num_steps} (+1); lower them"
            )
        return x, y

    def batches(self, split, batch_size, *, epoch=0, skip=0, shuffle=False, drop_remainder=False):
        # `shuffle` is ignored on purpose: consecutive batches must continue each row.
        x, y = self.layout(split, batch_size)
        self.last_batch_size[split] = batch_size
        return tf.data.Dataset.from_tensor_slices((x[skip:], y[skip:])).prefetch(2)

    def arrays(self, split: str):
        return None


# --- PTB-style files ----------------------------------------------------------------------


@dataclass(frozen=True)
class TextCorpusConfig(LanguageModelConfig):
    path: str = ""  # folder holding the three files
    train_file: str = "ptb.train.txt"
    valid_file: str = "ptb.valid.txt"  # "" when there is none
    test_file: str = "ptb.test.txt"  # "" when there is none
    vocab_size: int = field(default=10000, metadata=limits(ge=2))
    lowercase: bool = False

    def __post_init__(self):
        if not self.path:
            raise FieldError("path", "is required: the folder holding the corpus files")
        if not self.train_file:
            raise FieldError("train_file", "is required")


@datasets.register("ptb")
class TextCorpus(LanguageModelData):
    """PTB-style word corpus: train/valid/test text files, `<eos>` at each line end."""

    Config = TextCorpusConfig
    description = "PTB-style word corpus (train/valid/test text files, UTF-8)"

    def files(self) -> dict:
        folder = resolve_file(self.config.path, "data.path")
        if not folder.is_dir():
            raise ConfigError(f"config error: 'data.path' must be a folder: {folder}")
        names = {
            "train": self.config.train_file,
            "valid": self.config.valid_file,
            "test": self.config.test_file,
        }
        files = {}
        for split, name in names.items():
            if not name:
                continue
            path = folder / name
            if not path.exists():
                raise ConfigError(
                    f"config error: data file not found: {path} (from 'data.{split}_file'); "
                    f'set data.{split}_file to the file name, or "" if there is none'
                )
            files[split] = path
        return files

    def load_ids(self):
        files = self.files()
        lowercase = self.config.lowercase
        counts = Counter(read_words(files["train"], lowercase=lowercase))
        if not counts:
            raise DataError(f"{files['train']} holds no words")
        vocabulary = build_vocabulary(counts, self.config.vocab_size)
        index = {word: i for i, word in enumerate(vocabulary)}
        unk = index[UNK]
        ids = {}
        for split, path in files.items():
            stream = (index.get(w, unk) for w in read_words(path, lowercase=lowercase))
            ids[split] = np.fromiter(stream, dtype=np.int32)
        return ids, vocabulary


# --- a synthetic language with a known optimum --------------------------------------------


@dataclass(frozen=True)
class SyntheticLanguageConfig(LanguageModelConfig):
    """A sticky-topic hidden Markov source; see `SyntheticLanguage`."""

    vocab_size: int = field(default=40, metadata=limits(ge=2))  # words, besides <eos>
    num_topics: int = field(default=4, metadata=limits(ge=2))
    switch_probability: float = field(default=0.02, metadata=limits(gt=0, lt=1))
    topic_mass: float = field(default=0.5, metadata=limits(ge=0, le=1))
    eos_probability: float = field(default=0.1, metadata=limits(ge=0, lt=1))
    train_words: int = field(default=200_000, metadata=limits(ge=10))
    valid_words: int = field(default=20_000, metadata=limits(ge=0))
    test_words: int = field(default=20_000, metadata=limits(ge=0))

    def __post_init__(self):
        if self.vocab_size < self.num_topics:
            raise FieldError("vocab_size", f"must be at least num_topics ({self.num_topics})")
        if self.topic_mass + self.eos_probability > 1:
            raise FieldError("topic_mass", "plus eos_probability must not exceed 1")


@datasets.register("synthetic_lm")
class SyntheticLanguage(LanguageModelData):
    """Words from a hidden topic that persists (switching with `switch_probability` per word).

    Topic k owns words [k*m, (k+1)*m) (m = vocab_size // num_topics). Each word is `<eos>` with
    `eos_probability`, one of the topic's own words with `topic_mass`, else any word uniformly.
    Predicting well needs the topic, i.e. context reaching back many words, so carrying the
    LSTM state across batches matters. The best achievable perplexity (the true model's, by
    the forward algorithm over exactly the words a language model is scored on) is known.
    """

    Config = SyntheticLanguageConfig
    description = "synthetic sticky-topic language with known optimal perplexity (offline)"

    def vocabulary(self) -> list[str]:
        width = len(str(self.config.vocab_size - 1))
        return [EOS] + [f"w{i:0{width}d}" for i in range(self.config.vocab_size)]

    def emissions(self) -> np.ndarray:
        """[num_topics, 1 + vocab_size] word probabilities given the topic (id 0 is <eos>)."""
        c = self.config
        own = c.vocab_size // c.num_topics
        rest = 1.0 - c.topic_mass - c.eos_probability
        table = np.full((c.num_topics, 1 + c.vocab_size), rest / c.vocab_size)
        table[:, 0] = c.eos_probability
        for k in range(c.num_topics):
            table[k, 1 + k * own : 1 + (k + 1) * own] += c.topic_mass / own
        return table

    def transitions(self) -> np.ndarray:
        c = self.config
        k = c.num_topics
        stay = 1.0 - c.switch_probability
        table = np.full((k, k), c.switch_probability / (k - 1))
        np.fill_diagonal(table, stay)
        return table

    def sample(self, count: int, stream: int) -> np.ndarray:
        c = self.config
        rng = np.random.default_rng([self.seed, 7, stream])
        switches = rng.random(count) < c.switch_probability
        offsets = rng.integers(1, c.num_topics, count) * switches
        offsets[0] = rng.integers(c.num_topics)
        topics = np.cumsum(offsets) % c.num_topics
        own = c.vocab_size // c.num_topics
        kind = rng.random(count)
        words = 1 + rng.integers(0, c.vocab_size, count)
        own_words = 1 + topics * own + rng.integers(0, own, count)
        words = np.where(kind < c.topic_mass, own_words, words)
        words = np.where(kind >= 1.0 - c.eos_probability, 0, words)
        return words.astype(np.int32)

    def load_ids(self):
        c = self.config
        sizes = {"train": c.train_words, "valid": c.valid_words, "test": c.test_words}
        ids = {s: self.sample(n, i) for i, (s, n) in enumerate(sizes.items()) if n}
        return ids, self.vocabulary()

    def optimal_perplexity(self, split: str, batch_size: int | None = None) -> float:
        """The true source's perplexity on the words a model is scored on in this layout.

        Each of the `batch_size` rows starts with no history (as the model's state does), and
        only the targets the batches cover count. Exact for this sample: the Bayes-optimal
        predictor's cross-entropy, by the forward algorithm.
        """
        batch_size = batch_size or self.last_batch_size.get(split, 1)
        ids = self.ids[split]
        batch_len = len(ids) // batch_size
        rows = ids[: batch_size * batch_len].reshape(batch_size, batch_len)
        covered = self.steps(split, batch_size) * self.num_steps(split)
        emissions, transitions = self.emissions(), self.transitions()
        belief = np.full((batch_size, self.config.num_topics), 1.0 / self.config.num_topics)
        total = 0.0
        for t in range(covered + 1):
            if t:
                belief = belief @ transitions
            likelihood = emissions[:, rows[:, t]].T  # [batch, topics]
            joint = belief * likelihood
            probability = joint.sum(axis=1)
            if t:
                total -= np.log(probability).sum()
            belief = joint / probability[:, None]
        return math.exp(total / (covered * batch_size))
