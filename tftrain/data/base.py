"""The dataset contract: config -> `tf.data` batches for train/valid/test, plus a `DataSpec`.

A dataset yields `(features, labels)` batches. Raw features go through the spec's `transform`
(shift and scale) inside the pipeline, and the same transform is put in front of the model at
serving time, so exported models and `predict` take raw inputs exactly as the files hold them.

Batch order is a pure function of (seed, epoch): `batches(..., epoch=e, skip=k)` starts at the
k-th batch of epoch e, which is how a resumed run continues on exactly the data it would have
seen.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tftrain.errors import ConfigError, DataError
from tftrain.lazy import tf
from tftrain.schema import FieldError, limits

SPLITS = ("train", "valid", "test")


@dataclass
class DataSpec:
    """What a model needs to know about its data, saved as `data_spec.json` in the run."""

    task: str  # "classification", "regression", or a model-family task such as "language_model"
    input_shape: tuple
    input_dtype: str = "float32"
    num_classes: int | None = None
    output_dim: int | None = None
    class_names: list | None = None
    feature_names: list | None = None
    transform: dict | None = None  # {"shift": [...], "scale": [...]}: x -> (x - shift) * scale
    vocabulary: list | None = None
    extra: dict = field(default_factory=dict)
    # What throughput is counted in: a PTB row is num_steps words, a word2vec example is one
    # centre word. Progress shows "<rate> words/s"; summaries add `words_per_second`.
    throughput_unit: str = "examples"
    units_per_example: int = 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> DataSpec:
        values = json.loads(text)
        values["input_shape"] = tuple(values["input_shape"])
        return cls(**values)


def apply_transform(features, spec: DataSpec):
    """Raw features -> model inputs: cast to float32, then (x - shift) * scale."""
    features = tf.cast(features, tf.float32)
    if spec.transform:
        shift = tf.constant(spec.transform["shift"], tf.float32)
        scale = tf.constant(spec.transform["scale"], tf.float32)
        features = (features - shift) * scale
    return features


@dataclass(frozen=True)
class DataConfig:
    """Keys every dataset accepts."""

    type: str = ""


@dataclass(frozen=True)
class SplitConfig(DataConfig):
    """Keys for datasets held in memory as arrays: how to carve out valid and test."""

    valid_fraction: float = field(default=0.1, metadata=limits(ge=0, lt=1))
    valid_count: int | None = field(default=None, metadata=limits(ge=1))
    test_fraction: float = field(default=0.2, metadata=limits(ge=0, lt=1))
    holdout: Literal["random", "last"] = "random"
    standardize: bool = False


class Dataset:
    """Base of every dataset: subclasses set `Config`, `description` and the methods below."""

    Config = DataConfig
    description = ""
    name = ""
    # The DataSpec tasks this dataset can give; models name the datasets that fit them.
    tasks: frozenset[str] = frozenset()

    def __init__(self, config, *, seed: int):
        self.config = config
        self.seed = seed

    def spec(self) -> DataSpec:
        raise NotImplementedError

    def num_examples(self, split: str) -> int | None:
        """Examples in a split, or None if unknown without reading it all."""
        raise NotImplementedError

    def steps(self, split: str, batch_size: int, *, drop_remainder: bool = False) -> int | None:
        count = self.num_examples(split)
        if count is None:
            return None
        return count // batch_size if drop_remainder else math.ceil(count / batch_size)

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        epoch: int = 0,
        skip: int = 0,
        shuffle: bool = False,
        drop_remainder: bool = False,
    ):
        """A `tf.data.Dataset` of (features, labels) for one pass over `split`."""
        raise NotImplementedError

    def training_batches(self, split, batch_size, **options):
        """The batches the loop trains on: `batches`, plus `data.augment` where configured."""
        data = self.batches(split, batch_size, **options)
        augment = getattr(self.config, "augment", None)
        if augment is None or not augment.enabled:
            return data
        from tftrain.data.augment import augment_batches

        epoch, skip = options.get("epoch", 0), options.get("skip", 0)
        return augment_batches(data, augment, self.spec(), seed=self.seed, epoch=epoch, skip=skip)

    def arrays(self, split: str):
        """(raw features, labels) as numpy arrays when the split fits in memory, else None."""
        return None

    def check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ConfigError(f"usage error: unknown split {split!r}; use one of {SPLITS}")


class ArrayDataset(Dataset):
    """A dataset whose splits are numpy arrays in memory (tabular data, MNIST, digits)."""

    Config = SplitConfig
    task = "classification"
    tasks = frozenset({"classification", "regression"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._splits: dict | None = None
        self._tensors: dict = {}
        self._spec: DataSpec | None = None

    # Subclasses implement this one method.
    def load(self) -> dict:
        """{"train": (x, y), and "valid"/"test" if the source has them} as raw arrays."""
        raise NotImplementedError

    def class_names(self, labels) -> list | None:
        return None

    def feature_names(self) -> list | None:
        return None

    @property
    def splits(self) -> dict:
        if self._splits is None:
            self._splits = self._carve(self.load())
        return self._splits

    def _carve(self, loaded: dict) -> dict:
        """Hold out test and valid from train when the source does not provide them."""
        splits = dict(loaded)
        x, y = splits["train"]
        if len(x) != len(y):
            raise DataError(f"features and labels differ in length: {len(x)} vs {len(y)}")
        rng = np.random.default_rng(self.seed)
        order = np.arange(len(x)) if self.config.holdout == "last" else rng.permutation(len(x))
        if "test" not in splits and self.config.test_fraction > 0:
            count = max(1, round(len(x) * self.config.test_fraction))
            splits["test"] = (x[order[-count:]], y[order[-count:]])
            order = order[:-count]
        if "valid" not in splits:
            count = self.config.valid_count or round(len(order) * self.config.valid_fraction)
            if count >= len(order):
                raise ConfigError(
                    f"config error: 'data.valid_count' ({count}) leaves no training examples "
                    f"out of {len(order)}"
                )
            if count > 0:
                splits["valid"] = (x[order[-count:]], y[order[-count:]])
                order = order[:-count]
        if self.config.holdout == "last":
            order = np.sort(order)
        splits["train"] = (x[order], y[order])
        if len(order) == 0:
            raise DataError("the training split is empty")
        return splits

    def spec(self) -> DataSpec:
        if self._spec is None:
            self._spec = self.build_spec()
        return self._spec

    def build_spec(self) -> DataSpec:
        x, y = self.splits["train"]
        transform = self.transform(x)
        if self.task == "classification":
            all_labels = np.concatenate([s[1] for s in self.splits.values()])
            num_classes = int(all_labels.max()) + 1
            return DataSpec(
                task="classification",
                input_shape=tuple(x.shape[1:]),
                num_classes=num_classes,
                class_names=self.class_names(all_labels),
                feature_names=self.feature_names(),
                transform=transform,
            )
        return DataSpec(
            task="regression",
            input_shape=tuple(x.shape[1:]),
            output_dim=1 if y.ndim == 1 else int(y.shape[1]),
            feature_names=self.feature_names(),
            transform=transform,
        )

    def transform(self, train_x) -> dict | None:
        """Standardisation statistics from the training split, if configured."""
        if not self.config.standardize:
            return None
        values = train_x.astype(np.float64)
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std[std == 0] = 1.0  # constant columns stay at zero instead of dividing by zero
        return {"shift": mean.tolist(), "scale": (1.0 / std).tolist()}

    def num_examples(self, split: str) -> int | None:
        self.check_split(split)
        if split not in self.splits:
            return 0
        return len(self.splits[split][0])

    def arrays(self, split: str):
        self.check_split(split)
        return self.splits.get(split)

    def batches(self, split, batch_size, *, epoch=0, skip=0, shuffle=False, drop_remainder=False):
        self.check_split(split)
        if split not in self.splits:
            raise DataError(f"this dataset has no {split!r} split")
        if split not in self._tensors:
            x, y = self.splits[split]
            labels = y.astype(np.int32) if self.task == "classification" else y
            if self.task == "regression" and labels.ndim == 1:
                labels = labels[:, None]
            if labels.dtype == np.float64:
                labels = labels.astype(np.float32)
            # Kept on the host once; each epoch's pipeline gathers batches by index.
            self._tensors[split] = (tf.constant(x), tf.constant(labels))
        features, labels = self._tensors[split]
        count = int(features.shape[0])
        if shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(count)
        else:
            order = np.arange(count)
        if drop_remainder:
            order = order[: count - count % batch_size]
        order = order[skip * batch_size :]
        spec = self.spec()

        def gather(indices):
            return apply_transform(tf.gather(features, indices), spec), tf.gather(labels, indices)

        return (
            tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
            .batch(batch_size, drop_remainder=drop_remainder)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )


def resolve_file(path_text: str, key: str) -> Path:
    """A configured data path that must exist; a missing one is a config error naming the key."""
    if not path_text:
        raise ConfigError(f"config error: '{key}' is required for this dataset")
    path = Path(path_text).expanduser()
    if not path.exists():
        raise ConfigError(
            f"config error: data file not found: {path} (from '{key}'); "
            f"set {key} to an existing path, e.g. --set {key}=/path/to/file"
        )
    if not (path.is_file() or path.is_dir()):  # /dev/zero or a FIFO would be read forever
        raise ConfigError(f"config error: {path} (from '{key}') is not a regular file or folder")
    return path


def check_input_paths(config: DataConfig) -> None:
    """Every `path` / `*_path` key that is set must exist: checked when a run starts, before
    TensorFlow loads, so a config whose data is elsewhere fails in a second with the key."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        is_path = item.name == "path" or item.name.endswith("_path")
        if is_path and isinstance(value, str) and value:
            resolve_file(value, f"data.{item.name}")


def require_path(value: str, key: str) -> None:
    """Use in a data Config's __post_init__ for keys that must be set."""
    if not value:
        raise FieldError(key, "is required for this dataset")
