"""`data.augment`: random flips, padded crops and colour jitter on training batches only.

Augmentation runs inside `tf.data` on whole batches with stateless random ops seeded by
(augment seed or run seed, epoch, batch index), so an epoch's augmented batches are a pure
function of the seed and a resumed run sees exactly the images it would have seen.

The ops work on images in [0, 1]: the batch is mapped back from model inputs to raw pixels
(undoing the spec's shift/scale), divided by the pixel range (`spec.extra["pixel_max"]`,
255 by default), augmented, clipped to [0, 1] and mapped forward again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tftrain.errors import ConfigError
from tftrain.lazy import tf
from tftrain.schema import limits


@dataclass(frozen=True)
class AugmentConfig:
    """Random image changes for training batches; every option off by default."""

    horizontal_flip: bool = False
    vertical_flip: bool = False
    crop_padding: int = field(default=0, metadata=limits(ge=0))  # pad, then crop back, pixels
    brightness: float = field(default=0.0, metadata=limits(ge=0, le=1))  # max delta, [0, 1] units
    contrast: float = field(default=0.0, metadata=limits(ge=0, lt=1))  # factor in 1 -/+ this
    saturation: float = field(default=0.0, metadata=limits(ge=0, lt=1))  # factor in 1 -/+ this
    hue: float = field(default=0.0, metadata=limits(ge=0, le=0.5))  # max hue shift (turns)
    seed: int | None = field(default=None, metadata=limits(ge=0))  # default: the run's seed

    @property
    def enabled(self) -> bool:
        return bool(
            self.horizontal_flip
            or self.vertical_flip
            or self.crop_padding
            or self.brightness
            or self.contrast
            or self.saturation
            or self.hue
        )


def check_augment(config: AugmentConfig, input_shape) -> None:
    """Refuse options that cannot apply to this data's shape."""
    if not config.enabled:
        return
    if len(input_shape) != 3:
        raise ConfigError(
            f"config error: 'data.augment' needs images of shape (height, width, channels), "
            f"but this data gives {list(input_shape)} (set data.flatten: false or "
            f"data.image: true)"
        )
    if (config.saturation or config.hue) and input_shape[-1] != 3:
        raise ConfigError(
            f"config error: 'data.augment.saturation' and 'hue' need RGB images, "
            f"but these have {input_shape[-1]} channel(s)"
        )


def augment_batches(data, config: AugmentConfig, spec, *, seed: int, epoch: int, skip: int):
    """Map `augment_images` over a dataset of (features, labels) batches, seeded per batch."""
    check_augment(config, spec.input_shape)
    base = config.seed if config.seed is not None else seed
    pixel_max = float((spec.extra or {}).get("pixel_max", 255.0))
    shift, scale = 0.0, 1.0
    if spec.transform:
        shift = tf.constant(spec.transform["shift"], tf.float32)
        scale = tf.constant(spec.transform["scale"], tf.float32)

    def augment(index, batch):
        features, labels = batch
        batch_seed = tf.stack([tf.constant(base, tf.int64), epoch * 2**24 + index])
        unit = (features / scale + shift) / pixel_max
        unit = augment_images(unit, config, batch_seed)
        return (unit * pixel_max - shift) * scale, labels

    return (
        data.enumerate(start=skip)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def augment_images(images, config: AugmentConfig, seed):
    """Augment a float batch (B, H, W, C) in [0, 1]; each image draws its own changes."""
    images = tf.convert_to_tensor(images, tf.float32)
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)

    def uniform(index, low, high, shape=None):
        shape = [batch] if shape is None else shape
        return tf.random.stateless_uniform(shape, seeds[index], minval=low, maxval=high)

    def per_image(values):
        return tf.reshape(values, [-1, 1, 1, 1])

    if config.horizontal_flip:
        flip = per_image(uniform(0, 0.0, 1.0)) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    if config.vertical_flip:
        flip = per_image(uniform(1, 0.0, 1.0)) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[1]), images)
    if config.crop_padding:
        images = random_crop(images, config.crop_padding, seeds[2])
    if config.brightness:
        images = images + per_image(uniform(3, -config.brightness, config.brightness))
    if config.contrast:
        factor = per_image(uniform(4, 1.0 - config.contrast, 1.0 + config.contrast))
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        images = (images - mean) * factor + mean
    if config.saturation or config.hue:
        hsv = tf.image.rgb_to_hsv(tf.clip_by_value(images, 0.0, 1.0))
        hue, saturation, value = tf.unstack(hsv, axis=-1)
        if config.hue:
            delta = tf.reshape(uniform(5, -config.hue, config.hue), [-1, 1, 1])
            hue = tf.math.floormod(hue + delta, 1.0)
        if config.saturation:
            factor = uniform(6, 1.0 - config.saturation, 1.0 + config.saturation)
            saturation = tf.clip_by_value(saturation * tf.reshape(factor, [-1, 1, 1]), 0.0, 1.0)
        images = tf.image.hsv_to_rgb(tf.stack([hue, saturation, value], axis=-1))
    return tf.clip_by_value(images, 0.0, 1.0)


def random_crop(images, padding: int, seed):
    """Zero-pad by `padding` pixels per side, then crop each image back at a random offset."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed, minval=0, maxval=2 * padding + 1, dtype=tf.int32
    )
    rows = offsets[:, :1] + tf.range(height)[None, :]  # (B, H)
    columns = offsets[:, 1:] + tf.range(width)[None, :]  # (B, W)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, H, W + 2p, C)
    return tf.gather(cropped, columns, axis=2, batch_dims=1)  # (B, H, W, C)
