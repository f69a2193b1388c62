"""`data.type: text_classification`: labelled texts from a user's files, as padded token ids.

The files are read by `text_files` (CSV/TSV, JSON lines, a folder per class). Texts are
tokenised with the same `tf.strings` ops the exported model runs, the vocabulary is built on
the training split only, and every split becomes int32 ids `[examples, max_length]` (0 is
padding, 1 the out-of-vocabulary token). The spec keeps the vocabulary, the tokenisation
settings and the class names, so a trained model serves raw strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tftrain.data.base import ArrayDataset, DataSpec, SplitConfig, require_path, resolve_file
from tftrain.data.text_files import (
    detect_format,
    given_splits,
    read_folder_texts,
    read_labelled_texts,
)
from tftrain.errors import DataError
from tftrain.preprocessing.text import build_vocabulary, pad_ids, tokenize_texts
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits

PAD = "<pad>"


@dataclass(frozen=True)
class TextClassificationConfig(SplitConfig):
    """Where the labelled texts are, how to read them, and how to tokenise them."""

    path: str = ""  # a CSV/TSV/JSONL file, or a folder with one sub-folder of .txt per class
    valid_path: str | None = None
    test_path: str | None = None
    format: Literal["auto", "csv", "jsonl", "folders"] = "auto"
    text_column: str | int = "auto"  # csv: name or index; auto = the longest strings
    label_column: str | int = "auto"  # csv: name or index; auto = the few-valued column
    header: Literal["auto"] | bool = "auto"  # csv
    delimiter: str = "auto"  # csv: sniffed when auto
    text_field: str = "text"  # jsonl
    label_field: str = "label"  # jsonl
    lowercase: bool = True
    split_punctuation: bool = True
    max_length: int = field(default=200, metadata=limits(ge=1))  # tokens; truncate / pad
    min_count: int = field(default=1, metadata=limits(ge=1))
    max_vocab: int = field(default=20000, metadata=limits(ge=3))  # including <pad> and oov
    oov_token: str = "<unk>"
    class_weights: Literal["none", "balanced"] | None = "none"

    def __post_init__(self):
        require_path(self.path, "path")
        if self.standardize:
            raise FieldError("standardize", "does not apply to token ids; remove it")
        if self.oov_token == PAD:
            raise FieldError("oov_token", f"must differ from the padding token {PAD}")


def class_order(labels: list[str]) -> list[str]:
    """Class names: numerically when every label is an integer, else alphabetically."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def balanced_weights(label_ids: np.ndarray, num_classes: int) -> list[float]:
    """n / (classes x count) per class (scikit-learn's "balanced"); 1 for unseen classes."""
    counts = np.bincount(label_ids, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(label_ids) / (num_classes * np.maximum(counts, 1)), 1.0)
    return [round(float(w), 6) for w in weights]


@datasets.register("text_classification")
class TextClassification(ArrayDataset):
    """Labelled texts (CSV/TSV, JSON lines, class folders) -> token ids and class labels."""

    Config = TextClassificationConfig
    description = "labelled texts from CSV/TSV, JSON lines or class folders (text classifiers)"
    task = "classification"
    tasks = frozenset({"classification"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._texts: dict = {}
        self._vocabulary: list[str] = []
        self._classes: list[str] = []

    # --- reading -------------------------------------------------------------------------

    def read_files(self) -> dict[str, tuple[list[str], list[str]]]:
        """{split: (texts, label strings)} for the splits the files give."""
        c = self.config
        path = resolve_file(c.path, "data.path")
        fmt = detect_format(path) if c.format == "auto" else c.format
        raw, layout = {}, None
        splits = given_splits(path) if fmt == "folders" else {}
        if splits:  # aclImdb: train/ and test/ inside, classes as the test (or train) folders
            for split, folder in splits.items():
                raw[split] = read_folder_texts(folder)
            classes = set(raw.get("test", raw["train"])[1])
            raw = {s: self.keep(raw[s], classes) for s in raw}
        else:
            *raw["train"], layout = read_labelled_texts(path, c, fmt)
        for split in ("valid", "test"):
            given = getattr(c, f"{split}_path")
            if given:
                other = resolve_file(given, f"data.{split}_path")
                other_fmt = detect_format(other) if c.format == "auto" else c.format
                # Same columns, delimiter and header as the training file.
                same = layout if other_fmt == fmt else None
                *raw[split], _ = read_labelled_texts(other, c, other_fmt, same)
        return raw

    @staticmethod
    def keep(pair, classes: set) -> tuple[list[str], list[str]]:
        texts, labels = pair
        kept = [(t, y) for t, y in zip(texts, labels, strict=True) if y in classes]
        return [t for t, _ in kept], [y for _, y in kept]

    def load(self) -> dict:
        raw = self.read_files()
        self._classes = class_order([y for _, labels in raw.values() for y in labels])
        if len(self._classes) < 2:
            raise DataError(
                f"{self.config.path}: every example has the label {self._classes[0]!r}; "
                f"a classifier needs at least two classes"
            )
        ids = {name: i for i, name in enumerate(self._classes)}
        return {
            split: (np.array(texts, dtype=object), np.array([ids[y] for y in labels], np.int32))
            for split, (texts, labels) in raw.items()
        }

    @property
    def splits(self) -> dict:
        if self._splits is None:
            carved = self._carve(self.load())
            c = self.config
            options = dict(lowercase=c.lowercase, split_punctuation=c.split_punctuation)
            tokens = {s: tokenize_texts(list(x), **options) for s, (x, _) in carved.items()}
            self._vocabulary = build_vocabulary(
                tokens["train"],
                size=c.max_vocab,
                min_count=c.min_count,
                specials=[PAD, c.oov_token],
            )
            self._texts = {s: list(x) for s, (x, _) in carved.items()}
            self._splits = {
                split: (
                    pad_ids(tokens[split], self._vocabulary, unknown=1, length=c.max_length),
                    y,
                )
                for split, (_, y) in carved.items()
            }
        return self._splits

    def texts(self, split: str) -> list[str]:
        """The raw texts of a split, in the order of its ids and labels."""
        self.check_split(split)
        self.splits  # noqa: B018  (reads and carves)
        return self._texts.get(split, [])

    # --- the spec --------------------------------------------------------------------------

    def build_spec(self) -> DataSpec:
        c = self.config
        train_labels = self.splits["train"][1]
        weights = None
        if c.class_weights == "balanced":
            weights = balanced_weights(train_labels, len(self._classes))
        return DataSpec(
            task="classification",
            input_shape=(c.max_length,),
            input_dtype="int32",
            num_classes=len(self._classes),
            class_names=list(self._classes),
            vocabulary=list(self._vocabulary),
            extra={
                "text": {
                    "lowercase": c.lowercase,
                    "split_punctuation": c.split_punctuation,
                    "max_length": c.max_length,
                    "oov_token": c.oov_token,
                },
                "class_weights": weights,
                "source": str(Path(c.path)),
            },
            throughput_unit="examples",
        )
