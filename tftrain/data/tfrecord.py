"""TFRecord: write any in-memory dataset as sharded `tf.train.Example` files, and read them back.

Layout of an output folder::

    spec.json                       shapes, dtypes, split sizes, shard files, the data spec
    train-00000-of-00004.tfrecord   examples in the source's order, split into contiguous shards
    valid-00000-of-00001.tfrecord
    test-...

Each Example holds `features` and `label` as the raw bytes of the source arrays (shape and dtype
in spec.json), so reading back gives exactly the arrays that were written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tftrain.data.augment import AugmentConfig
from tftrain.data.base import SPLITS, DataConfig, Dataset, DataSpec, apply_transform, resolve_file
from tftrain.errors import ConfigError, DataError
from tftrain.lazy import tf
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits

FORMAT = "tftrain-tfrecord-1"


def write_tfrecords(dataset, out_dir, *, shards: int = 1) -> dict:
    """Write every split of `dataset` under `out_dir`; returns what spec.json records."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = dataset.spec()
    info = {"format": FORMAT, "splits": {}, "data_spec": json.loads(spec.to_json())}
    for split in SPLITS:
        if not dataset.num_examples(split):
            continue
        arrays = dataset.arrays(split)
        if arrays is None:
            raise DataError(
                f"the {dataset.name!r} dataset does not hold its {split!r} split in memory, "
                f"so it cannot be converted to TFRecord"
            )
        x, y = (np.ascontiguousarray(a) for a in arrays)
        info["features"] = {"dtype": x.dtype.str, "shape": list(x.shape[1:])}
        info["labels"] = {"dtype": y.dtype.str, "shape": list(y.shape[1:])}
        count = min(shards, len(x))
        bounds = [round(i * len(x) / count) for i in range(count + 1)]
        files = []
        for shard in range(count):
            name = f"{split}-{shard:05d}-of-{count:05d}.tfrecord"
            with tf.io.TFRecordWriter(str(out / name)) as writer:
                for i in range(bounds[shard], bounds[shard + 1]):
                    writer.write(example_bytes(x[i], y[i]))
            files.append(name)
        info["splits"][split] = {"count": len(x), "files": files}
    (out / "spec.json").write_text(json.dumps(info, indent=1))
    return info


def example_bytes(features: np.ndarray, label: np.ndarray) -> bytes:
    def feature(array):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[array.tobytes()]))

    example = tf.train.Example(
        features=tf.train.Features(
            feature={"features": feature(features), "label": feature(np.asarray(label))}
        )
    )
    return example.SerializeToString()


@dataclass(frozen=True)
class TfrecordConfig(DataConfig):
    """A folder written by `tftrain data convert ... --to tfrecord`."""

    path: str = ""
    shuffle_buffer: int = field(default=10000, metadata=limits(ge=1))
    cycle_length: int = field(default=4, metadata=limits(ge=1))  # shards read at once
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        if not self.path:
            raise FieldError("path", "is required: a folder written by `tftrain data convert`")


@datasets.register("tfrecord")
class TfrecordDataset(Dataset):
    """Sharded TFRecord files: parallel interleave, seeded shuffle buffer, prefetch."""

    Config = TfrecordConfig
    description = "sharded TFRecord files written by `tftrain data convert`"
    tasks = frozenset({"classification", "regression"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._info: dict | None = None
        self._arrays: dict = {}

    @property
    def info(self) -> dict:
        if self._info is None:
            folder = resolve_file(self.config.path, "data.path")
            spec_file = folder / "spec.json"
            if not spec_file.exists():
                raise ConfigError(
                    f"config error: {spec_file} not found; 'data.path' must be a folder written "
                    f"by `tftrain data convert SOURCE --to tfrecord OUT_DIR`"
                )
            try:
                info = json.loads(spec_file.read_text())
            except (OSError, ValueError) as error:
                raise DataError(f"cannot read {spec_file}: {error}") from None
            if info.get("format") != FORMAT:
                raise DataError(f"{spec_file}: unknown format {info.get('format')!r}")
            for split in info["splits"].values():
                for name in split["files"]:
                    if not (folder / name).exists():
                        raise DataError(f"shard {folder / name} listed in {spec_file} is missing")
            self._folder = folder
            self._info = info
        return self._info

    def spec(self) -> DataSpec:
        values = dict(self.info["data_spec"])
        values["input_shape"] = tuple(values["input_shape"])
        return DataSpec(**values)

    def num_examples(self, split: str) -> int | None:
        self.check_split(split)
        return self.info["splits"].get(split, {}).get("count", 0)

    def _records(self, split: str, *, epoch: int, shuffle: bool):
        """Parsed (raw features, label) pairs; shard order and shuffle seeded by (seed, epoch)."""
        if not self.num_examples(split):
            raise DataError(f"this dataset has no {split!r} split")
        files = [str(self._folder / name) for name in self.info["splits"][split]["files"]]
        if shuffle:
            files = [
                files[i] for i in np.random.default_rng([self.seed, epoch]).permutation(len(files))
            ]
        feature_info, label_info = self.info["features"], self.info["labels"]
        task = self.info["data_spec"]["task"]

        def parse(record):
            parsed = tf.io.parse_single_example(
                record,
                {
                    "features": tf.io.FixedLenFeature([], tf.string),
                    "label": tf.io.FixedLenFeature([], tf.string),
                },
            )
            x = tf.io.decode_raw(parsed["features"], np.dtype(feature_info["dtype"]))
            y = tf.io.decode_raw(parsed["label"], np.dtype(label_info["dtype"]))
            return tf.reshape(x, feature_info["shape"]), tf.reshape(y, label_info["shape"])

        data = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(self.config.cycle_length, len(files)) if shuffle else 1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if shuffle:
            seed = (self.seed * 1_000_003 + epoch) % 2**31
            data = data.shuffle(
                self.config.shuffle_buffer, seed=seed, reshuffle_each_iteration=False
            )
        data = data.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if task == "classification":
            data = data.map(lambda x, y: (x, tf.cast(y, tf.int32)))
        elif task == "regression":
            data = data.map(lambda x, y: (x, tf.reshape(tf.cast(y, tf.float32), [-1])))
        return data

    def batches(self, split, batch_size, *, epoch=0, skip=0, shuffle=False, drop_remainder=False):
        self.check_split(split)
        spec = self.spec()
        return (
            self._records(split, epoch=epoch, shuffle=shuffle)
            .batch(batch_size, drop_remainder=drop_remainder)
            .skip(skip)
            .map(
                lambda x, y: (apply_transform(x, spec), y),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .prefetch(tf.data.AUTOTUNE)
        )

    def arrays(self, split: str):
        """The split exactly as written (raw features, labels as stored), in file order."""
        self.check_split(split)
        if not self.num_examples(split):
            return None
        if split not in self._arrays:
            count = self.num_examples(split)
            feature_info, label_info = self.info["features"], self.info["labels"]
            xs, ys = [], []
            for x, y in (
                self._records(split, epoch=0, shuffle=False).batch(4096).as_numpy_iterator()
            ):
                xs.append(x)
                ys.append(y)
            x = np.concatenate(xs).astype(np.dtype(feature_info["dtype"]))
            y = np.concatenate(ys).astype(np.dtype(label_info["dtype"]))
            if len(x) != count:
                raise DataError(f"{self._folder}: {split} has {len(x)} examples, spec says {count}")
            self._arrays[split] = (x, y.reshape(count, *label_info["shape"]))
        return self._arrays[split]
