"""The `image_folder` dataset: one sub-folder of PNG/JPEG images per class.

Images are decoded and resized inside `tf.data` to uint8 pixels (rounded after resizing), so
raw features are 0..255 like MNIST's; the spec's transform normalises them (to [0, 1], or per
channel by the training images' mean and standard deviation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tftrain.data.augment import AugmentConfig, check_augment
from tftrain.data.base import DataConfig, Dataset, DataSpec, apply_transform, resolve_file
from tftrain.errors import ConfigError, DataError
from tftrain.lazy import tf
from tftrain.preprocessing.images import IMAGE_SUFFIXES, decode_pixels, image_files
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits

# --- the image_folder dataset --------------------------------------------------------------


@dataclass(frozen=True)
class ImageFolderConfig(DataConfig):
    """A folder with one sub-folder of PNG/JPEG images per class (the folder name)."""

    path: str = ""
    valid_path: str | None = None  # same class sub-folders; default: carved from `path`
    test_path: str | None = None
    valid_fraction: float = field(default=0.1, metadata=limits(ge=0, lt=1))
    test_fraction: float = field(default=0.2, metadata=limits(ge=0, lt=1))
    image_size: tuple[int, ...] = ()  # [height, width]; default: the first image's size
    color_mode: Literal["auto", "grayscale", "rgb"] = "auto"  # auto: rgb if any image has colour
    normalize: Literal["unit", "per_channel", "none"] = "unit"
    cache: bool = False  # keep decoded images in memory after the first pass
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        if not self.path:
            raise FieldError("path", "is required: a folder with one sub-folder per class")
        if self.image_size and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise FieldError("image_size", f"must be [height, width], got {list(self.image_size)}")


@datasets.register("image_folder")
class ImageFolder(Dataset):
    """PNG/JPEG files in class sub-folders; decoded and resized in `tf.data`, names kept."""

    Config = ImageFolderConfig
    description = "folder of class sub-folders of PNG/JPEG images (grayscale or colour)"
    tasks = frozenset({"classification"})

    def __init__(self, config, *, seed: int):
        super().__init__(config, seed=seed)
        self._files: dict | None = None
        self._spec: DataSpec | None = None
        self._arrays: dict = {}

    # --- listing and checking the files ----------------------------------------------

    def _class_folders(self, root: Path) -> dict[str, list[Path]]:
        if not root.is_dir():
            raise ConfigError(f"config error: {root} is not a folder of class sub-folders")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DataError(f"{root} has no class sub-folders (expected e.g. {root}/cat/1.png)")
        classes = {}
        for folder in folders:
            files = image_files(folder)
            if not files:
                raise DataError(
                    f"class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}); "
                    f"add images or remove the folder"
                )
            classes[folder.name] = files
        return classes

    @property
    def files(self) -> dict:
        """{split: (paths, labels)} with class names in `self.class_names`."""
        if self._files is None:
            config = self.config
            train = self._class_folders(resolve_file(config.path, "data.path"))
            self.class_names = sorted(train)
            ids = {name: index for index, name in enumerate(self.class_names)}

            def flat(classes, source):
                unknown = sorted(set(classes) - set(ids))
                if unknown:
                    raise DataError(
                        f"{source}/{unknown[0]} is a class folder that {config.path} lacks; "
                        f"the classes are {self.class_names}"
                    )
                pairs = [(p, ids[name]) for name in sorted(classes) for p in classes[name]]
                return [p for p, _ in pairs], np.asarray([y for _, y in pairs], np.int32)

            paths, labels = flat(train, config.path)
            splits = {}
            order = np.random.default_rng(self.seed).permutation(len(paths))
            for split in ("test", "valid"):
                source = getattr(config, f"{split}_path")
                if source:
                    folder = resolve_file(source, f"data.{split}_path")
                    splits[split] = flat(self._class_folders(folder), source)
                    continue
                fraction = getattr(config, f"{split}_fraction")
                count = round(len(order) * fraction) if fraction else 0
                if count:
                    if count >= len(order):
                        raise DataError(
                            f"{config.path}: too few images to hold out a {split} split"
                        )
                    held, order = np.sort(order[-count:]), order[:-count]
                    splits[split] = ([paths[i] for i in held], labels[held])
            order = np.sort(order)
            splits["train"] = ([paths[i] for i in order], labels[order])
            self._files = splits
        return self._files

    def _scan(self) -> tuple[int, int, int]:
        """Decode every file once (in parallel); a file that fails is a DataError naming it.

        Returns (height, width, channels) for the dataset."""
        all_paths = [str(p) for paths, _ in self.files.values() for p in paths]

        def shape_of(index, path):
            image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
            return index, tf.shape(image)

        scan = (
            tf.data.Dataset.from_tensor_slices((np.arange(len(all_paths)), all_paths))
            .map(shape_of, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .ignore_errors()
        )
        shapes = {int(i): s for i, s in scan.as_numpy_iterator()}
        if len(shapes) < len(all_paths):
            failed = [p for i, p in enumerate(all_paths) if i not in shapes]
            more = f" ({len(failed)} files in all)" if len(failed) > 1 else ""
            raise DataError(
                f"cannot decode image {failed[0]}: not a readable PNG, JPEG, GIF or BMP file"
                f"{more}; fix or remove it"
            )
        mode = self.config.color_mode
        if mode == "auto":
            channels = 3 if any(s[2] >= 3 for s in shapes.values()) else 1
        else:
            channels = 1 if mode == "grayscale" else 3
        if self.config.image_size:
            height, width = self.config.image_size
        else:
            first = str(self.files["train"][0][0])
            height, width = (int(v) for v in shapes[all_paths.index(first)][:2])
        return height, width, channels

    # --- the contract --------------------------------------------------------------------

    def spec(self) -> DataSpec:
        if self._spec is None:
            height, width, channels = self._scan()
            self._shape = (height, width, channels)
            check_augment(self.config.augment, self._shape)
            self._spec = DataSpec(
                task="classification",
                input_shape=self._shape,
                num_classes=len(self.class_names),
                class_names=list(self.class_names),
                transform=self._transform(),
                extra={"pixel_max": 255.0, "source": str(self.config.path)},
            )
        return self._spec

    def _transform(self) -> dict | None:
        if self.config.normalize == "none":
            return None
        if self.config.normalize == "unit":
            return {"shift": [0.0], "scale": [1.0 / 255.0]}
        channels = self._shape[2]
        total, squares, count = np.zeros(channels), np.zeros(channels), 0
        for images, _ in self._pixels("train").batch(256).as_numpy_iterator():
            values = images.reshape(-1, channels).astype(np.float64)
            total += values.sum(axis=0)
            squares += np.square(values).sum(axis=0)
            count += len(values)
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        std[std == 0] = 1.0
        return {"shift": mean.tolist(), "scale": (1.0 / std).tolist()}

    def num_examples(self, split: str) -> int | None:
        self.check_split(split)
        return len(self.files[split][0]) if split in self.files else 0

    def _pixels(self, split: str, order=None):
        """(uint8 image, label) pairs of `split` in `order` (default: file order)."""
        paths, labels = self.files[split]
        if order is None:
            order = np.arange(len(paths))
        height, width, channels = self._shape

        def load(path, label):
            return decode_pixels(tf.io.read_file(path), channels, (height, width)), label

        names = np.asarray([str(p) for p in paths], dtype=str)  # stays str when empty
        return tf.data.Dataset.from_tensor_slices((names[order], labels[order])).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    def arrays(self, split: str):
        self.check_split(split)
        if split not in self.files:
            return None
        if split not in self._arrays:
            self.spec()
            count = self.num_examples(split)
            images, labels = next(self._pixels(split).batch(max(count, 1)).as_numpy_iterator())
            self._arrays[split] = (images, labels)
        return self._arrays[split]

    def batches(self, split, batch_size, *, epoch=0, skip=0, shuffle=False, drop_remainder=False):
        self.check_split(split)
        if split not in self.files:
            raise DataError(f"this dataset has no {split!r} split")
        spec = self.spec()
        count = self.num_examples(split)
        if shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(count)
        else:
            order = np.arange(count)
        if drop_remainder:
            order = order[: count - count % batch_size]
        order = order[skip * batch_size :]
        if self.config.cache:
            images, labels = (tf.constant(a) for a in self.arrays(split))
            data = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(
                batch_size, drop_remainder=drop_remainder
            )
            data = data.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
        else:
            data = self._pixels(split, order).batch(batch_size, drop_remainder=drop_remainder)
        return data.map(
            lambda x, y: (apply_transform(x, spec), y),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        ).prefetch(tf.data.AUTOTUNE)
