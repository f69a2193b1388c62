"""`tftrain data convert` and `tftrain data inspect`: a dataset from a config or a bare source,
written as TFRecord, or summarised (sizes, shapes, labels, value ranges) with a PNG grid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from tftrain.data.base import SPLITS
from tftrain.errors import ConfigError
from tftrain.lazy import tf
from tftrain.shipped_configs import shipped_config

# A bare source path -> the dataset type that reads it.
SOURCE_TYPES = {".npz": "npz", ".csv": "csv"}


def load_dataset(source, overrides=(), *, seed: int = 42):
    """A dataset from a YAML config, or from a bare source (image folder, TFRecord folder,
    .npz, .csv) read with that type's defaults. Returns (dataset, data config)."""
    from tftrain.registry import datasets
    from tftrain.schema import Sources, build

    path = Path(source)
    if not path.exists():
        path = shipped_config(source) or path
    if not path.exists():
        raise ConfigError(f"usage error: {path} not found (give a config file or a data source)")
    if path.suffix.lower() in (".yaml", ".yml"):
        from tftrain.config import load_config

        config = load_config(path, overrides)
        data_config, seed = config.data, config.seed
    else:
        if path.is_dir():
            kind = "tfrecord" if (path / "spec.json").exists() else "image_folder"
        elif path.suffix.lower() in SOURCE_TYPES:
            kind = SOURCE_TYPES[path.suffix.lower()]
        else:
            raise ConfigError(
                f"usage error: {path}: give a config (.yaml), an image folder, a TFRecord folder, "
                f"an .npz or a .csv file"
            )
        raw = {"type": kind, "path": str(path)}
        for override in overrides:
            key, _, value = override.partition("=")
            import yaml

            raw[key.strip().removeprefix("data.")] = yaml.safe_load(value)
        data_config = build(datasets.get(kind).Config, raw, "data", Sources({}, f"source {path}"))
    return datasets.get(data_config.type)(data_config, seed=seed), data_config


def convert(source, out_dir, *, shards: int = 1, overrides=()) -> dict:
    from tftrain.data.tfrecord import write_tfrecords

    dataset, _ = load_dataset(source, overrides)
    return write_tfrecords(dataset, out_dir, shards=shards)


def inspect(source, *, overrides=(), grid=None, augmented=False, split="train", count=36) -> str:
    """A text summary of every split; with `grid`, a PNG of `count` examples of `split`."""
    dataset, data_config = load_dataset(source, overrides)
    spec = dataset.spec()
    lines = [
        f"dataset: {data_config.type}  task: {spec.task}  input shape: {list(spec.input_shape)}"
        + (f"  classes: {spec.num_classes}" if spec.num_classes else "")
    ]
    if spec.class_names:
        lines.append("class names: " + ", ".join(map(str, spec.class_names)))
    if spec.transform:
        shift, scale = spec.transform["shift"], spec.transform["scale"]
        lines.append(f"normalisation: (x - {rounded(shift)}) * {rounded(scale)}")
    lines.append(
        f"{'split':6} {'examples':>9}  {'features':22} {'labels':14} {'min':>8} {'max':>8} {'mean':>8}"
    )
    for name in SPLITS:
        size = dataset.num_examples(name)
        if not size:
            continue
        arrays = dataset.arrays(name)
        if arrays is None:
            lines.append(f"{name:6} {size:>9}  (streamed; not summarised)")
            continue
        x, y = arrays
        features = f"{x.dtype} {list(x.shape[1:])}"
        labels = f"{y.dtype} {list(y.shape[1:])}"
        lines.append(
            f"{name:6} {size:>9}  {features:22} {labels:14} {float(x.min()):>8.4g} "
            f"{float(x.max()):>8.4g} {float(x.mean()):>8.4g}"
        )
        if spec.task == "classification":
            counts = Counter(int(v) for v in np.asarray(y).reshape(-1))
            names = spec.class_names or []
            shown = "  ".join(
                f"{names[k] if k < len(names) else k}: {counts[k]}" for k in sorted(counts)
            )
            lines.append(f"       label counts: {shown}")
    if grid:
        labels = write_grid(dataset, grid, split=split, count=count, augmented=augmented)
        what = "augmented " if augmented else ""
        lines.append(f"wrote a grid of {len(labels)} {what}{split} images to {grid}")
    return "\n".join(lines)


def rounded(values) -> list:
    return [float(f"{v:.4g}") for v in values]


def write_grid(dataset, path, *, split="train", count=36, augmented=False) -> list:
    """Draw the first `count` examples of `split` (as the model sees them) with their labels."""
    spec = dataset.spec()
    if len(spec.input_shape) not in (2, 3):
        raise ConfigError(
            f"usage error: --grid needs image data; this data has shape {list(spec.input_shape)}"
        )
    make = dataset.training_batches if augmented else dataset.batches
    features, labels = next(iter(make(split, count, epoch=0, skip=0, shuffle=False)))
    features = features.numpy()
    if spec.transform:  # back to raw pixels, then to [0, 1]
        shift = np.asarray(spec.transform["shift"], np.float32)
        scale = np.asarray(spec.transform["scale"], np.float32)
        features = features / scale + shift
    pixel_max = float((spec.extra or {}).get("pixel_max", 255.0))
    images = np.clip(features / pixel_max, 0.0, 1.0)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    zoom = max(1, 48 // max(images.shape[1:3]))
    images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
    names = spec.class_names or []
    texts = [str(names[int(y)]) if int(y) < len(names) else str(int(y)) for y in labels.numpy()]
    cells = [label_cell(image, text) for image, text in zip(images, texts, strict=True)]
    columns = int(np.ceil(np.sqrt(len(cells))))
    rows = int(np.ceil(len(cells) / columns))
    height, width = cells[0].shape[:2]
    canvas = np.full((rows * (height + 2) + 2, columns * (width + 2) + 2, 3), 0.5, np.float32)
    for index, cell in enumerate(cells):
        top, left = 2 + (index // columns) * (height + 2), 2 + (index % columns) * (width + 2)
        canvas[top : top + height, left : left + width] = cell
    png = tf.io.encode_png(tf.constant(np.round(canvas * 255).astype(np.uint8)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(png.numpy())
    return texts


# A 3x5 bitmap font, enough to write class names under each image without a plotting library.
FONT = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001010010010",
    "8": "111101111101111",
    "9": "111101111001111",
    "A": "010101111101101",
    "B": "110101110101110",
    "C": "011100100100011",
    "D": "110101101101110",
    "E": "111100110100111",
    "F": "111100110100100",
    "G": "011100101101011",
    "H": "101101111101101",
    "I": "111010010010111",
    "J": "001001001101010",
    "K": "101101110101101",
    "L": "100100100100111",
    "M": "101111111101101",
    "N": "110101101101101",
    "O": "010101101101010",
    "P": "110101110100100",
    "Q": "010101101110011",
    "R": "110101110101101",
    "S": "011100010001110",
    "T": "111010010010010",
    "U": "101101101101111",
    "V": "101101101101010",
    "W": "101101111111101",
    "X": "101101010101101",
    "Y": "101101010010010",
    "Z": "111001010100111",
    "_": "000000000000111",
    "-": "000000111000000",
    ".": "000000000000010",
    " ": "000000000000000",
}


def label_cell(image: np.ndarray, text: str) -> np.ndarray:
    """The image with a strip below it holding `text` (cut to fit) in the bitmap font."""
    width = image.shape[1]
    strip = np.zeros((9, width, 3), np.float32)
    fit = max(1, (width - 2) // 4)
    for index, char in enumerate(text.upper()[:fit]):
        bits = FONT.get(char, "111111111111111")
        glyph = np.asarray([int(b) for b in bits], np.float32).reshape(5, 3)
        left = 2 + index * 4
        strip[2:7, left : left + 3] = glyph[..., None]
    return np.concatenate([image, strip], axis=0)
