"""Image files and bytes -> uint8 pixels of a model's input shape (TF ops, as in serving).

Images are decoded and resized to uint8 pixels (rounded after resizing), so raw features are
0..255 like MNIST's; a dataset's transform normalises them.
"""

from __future__ import annotations

from pathlib import Path

from tftrain.data.base import DataSpec
from tftrain.lazy import tf

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def is_image_path(path) -> bool:
    """An image file (by suffix) or a folder (searched for images)."""
    path = Path(path)
    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively), sorted, hidden files skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def decode_pixels(contents, channels: int, size):
    """Encoded image bytes -> uint8 (height, width, channels), resized if needed (TF ops)."""
    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    height, width = size
    shape = tf.shape(image)
    if image.shape[0] == height and image.shape[1] == width:
        return image

    def resize():
        resized = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)

    same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
    image = tf.cond(same, lambda: image, resize)
    image.set_shape([height, width, channels])
    return image


def image_size_of(spec: DataSpec) -> tuple[int, int, int]:
    if len(spec.input_shape) == 3:
        return tuple(int(v) for v in spec.input_shape)
    height, width = spec.input_shape
    return int(height), int(width), 1


def raw_from_pixels(pixels, spec: DataSpec):
    """uint8 pixels -> raw features as the data holds them (e.g. 0..16 for digits)."""
    scale = float((spec.extra or {}).get("pixel_max", 255.0)) / 255.0
    raw = tf.cast(pixels, tf.float32) * scale
    return tf.reshape(raw, [-1, *spec.input_shape])
