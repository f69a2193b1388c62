"""Images for a model's serving signature and `tftrain predict`: encoded bytes or files in,
the model's classes out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tftrain.errors import ConfigError, DataError
from tftrain.lazy import tf
from tftrain.models.base import prediction_rows
from tftrain.preprocessing.images import (
    IMAGE_SUFFIXES,
    decode_pixels,
    image_files,
    image_size_of,
    raw_from_pixels,
)


def encoded_image_signature(model) -> dict:
    """{"serving_images": ...}: a batch of encoded PNG/JPEG strings -> the model's outputs."""
    spec = model.spec
    if len(spec.input_shape) not in (2, 3):
        return {}
    height, width, channels = image_size_of(spec)
    if channels not in (1, 3):
        return {}

    def serve_images(images):
        pixels = tf.map_fn(
            lambda data: decode_pixels(data, channels, (height, width)),
            images,
            fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8),
        )
        return model.serve(raw_from_pixels(pixels, spec))

    signature = [tf.TensorSpec([None], tf.string, name="images")]
    return {"serving_images": (signature, serve_images)}


def predict_images(model, request) -> list[dict]:
    """Rows of top-k classes for image files, folders of images, and feature files."""
    from tftrain.data.features import read_features

    spec = model.spec
    height, width, channels = image_size_of(spec)
    names, features = [], []
    for text in request.inputs:
        path = Path(text)
        if not path.exists():
            raise ConfigError(f"usage error: input not found: {path}")
        if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            files = image_files(path) if path.is_dir() else [path]
            if not files:
                raise DataError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            for file in files:
                try:
                    pixels = decode_pixels(tf.io.read_file(str(file)), channels, (height, width))
                except (tf.errors.InvalidArgumentError, ValueError):
                    raise DataError(
                        f"cannot decode image {file}: not a readable PNG, JPEG, GIF or BMP file"
                    ) from None
                features.append(raw_from_pixels(pixels, spec).numpy())
                names.append(str(file))
        else:
            array = read_features(path, spec)
            features.append(array)
            names.extend(f"{path}[{i}]" for i in range(len(array)))
    features = np.concatenate(features).astype(np.float32)
    serve = model.serving_functions()["serving_default"][1]
    size = request.batch_size
    parts = [serve(features=features[i : i + size]) for i in range(0, len(features), size)]
    outputs = {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in parts[0]}
    rows = prediction_rows(outputs, spec, top_k=request["top_k"])
    return [{"input": name, **row} for name, row in zip(names, rows, strict=True)]
