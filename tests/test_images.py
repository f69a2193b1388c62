"""Image data: image folders (train, predict names, export with an encoded-image signature),
clear errors for bad files, TFRecord round trips, seeded train-only augmentation, inspect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tftrain.config import config_from_dict
from tftrain.registry import build_dataset

PATTERNS = ("bars", "dots", "square")


def png_bytes(image: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_png(image).numpy()


def pattern_image(kind: str, rng, size=12) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    if kind == "bars":
        image[:, ::3, 0] = 240
    elif kind == "dots":
        image[::3, ::3, 1] = 240
    else:
        image[3:9, 3:9, 2] = 240
    return np.clip(image + rng.integers(0, 30, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def image_folder(tmp_path):
    """Three classes of 12 generated 12x12 RGB PNGs (one JPEG each) in class sub-folders."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for kind in PATTERNS:
        (root / kind).mkdir(parents=True)
        for index in range(12):
            image = pattern_image(kind, rng)
            if index == 0:
                (root / kind / "0.jpg").write_bytes(tf.io.encode_jpeg(image, quality=95).numpy())
            else:
                (root / kind / f"{index}.png").write_bytes(png_bytes(image))
    return root


def folder_config(path, **data):
    return {
        "name": "folder",
        "seed": 3,
        "model": {
            "type": "cnn",
            "filters": [8],
            "kernel_size": [3],
            "dense_units": [16],
            "dropout": 0.0,
        },
        "data": {"type": "image_folder", "path": str(path), "valid_fraction": 0.2, **data},
        "train": {
            "batch_size": 4,
            "epochs": 6,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
        },
    }


def test_image_folder_trains_predicts_names_and_exports(cli, write_config, image_folder, tmp_path):
    import tensorflow as tf

    run = tmp_path / "run"
    config = folder_config(image_folder, normalize="per_channel")
    cli("fit", write_config(config), "--run-dir", run, "--quiet")
    spec = json.loads((run / "data_spec.json").read_text())
    assert spec["class_names"] == list(PATTERNS)
    assert spec["input_shape"] == [12, 12, 3] and len(spec["transform"]["shift"]) == 3
    assert json.loads(cli("eval", run, "--json").stdout)["accuracy"] >= 0.85

    # A file and a folder: one row per image, class names and top-2 probabilities.
    output = cli(
        "predict", run, image_folder / "dots" / "3.png", image_folder / "square", "--top-k", "2"
    ).stdout
    lines = output.splitlines()
    assert lines[0].split(",")[:3] == ["input", "class_id_1", "class_name_1"]
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 1 + 12
    names = [row[2] for row in rows]
    assert names[0] == "dots" and names[1:].count("square") >= 11
    assert all(float(row[3]) >= float(row[6]) for row in rows)  # top-1 >= top-2

    report = cli("export", run).stdout
    assert "matches the trained model" in report
    loaded = tf.saved_model.load(str(run / "export" / "saved_model"))
    assert {"serving_default", "serving_images"} <= set(loaded.signatures)
    files = [image_folder / "bars" / "5.png", image_folder / "square" / "0.jpg"]
    encoded = tf.constant([f.read_bytes() for f in files])
    from_bytes = loaded.signatures["serving_images"](images=encoded)
    assert from_bytes["class_ids"].numpy().tolist() == [0, 2]
    # The bytes signature and the float signature agree on the same pixels.
    pixels = np.stack([tf.io.decode_image(f.read_bytes(), channels=3).numpy() for f in files])
    from_floats = loaded.signatures["serving_default"](features=tf.constant(pixels, tf.float32))
    np.testing.assert_allclose(
        from_bytes["probabilities"].numpy(), from_floats["probabilities"].numpy(), atol=1e-6
    )


def test_grayscale_resize_and_cache(image_folder):
    config = config_from_dict(
        folder_config(image_folder, color_mode="grayscale", image_size=[8, 10], cache=True)
    )
    dataset = build_dataset(config)
    spec = dataset.spec()
    assert spec.input_shape == (8, 10, 1)
    x, y = dataset.arrays("train")
    assert x.shape == (dataset.num_examples("train"), 8, 10, 1) and x.dtype == np.uint8
    features, labels = next(iter(dataset.batches("train", 64)))
    np.testing.assert_allclose(features.numpy(), x / 255.0, atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), y)


def test_corrupt_image_is_a_data_error_naming_the_file(cli, write_config, image_folder):
    bad = image_folder / "dots" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    result = cli("fit", write_config(folder_config(image_folder)), "--quiet", expect=1)
    assert str(bad) in result.stderr and "cannot decode image" in result.stderr
    assert "internal error" not in result.stderr


def test_empty_class_folder_is_a_data_error_naming_the_folder(cli, write_config, image_folder):
    (image_folder / "empty_class").mkdir()
    (image_folder / "empty_class" / "notes.txt").write_text("no images here")
    result = cli("data", "inspect", write_config(folder_config(image_folder)), expect=1)
    assert str(image_folder / "empty_class") in result.stderr and "no images" in result.stderr


def test_tfrecord_round_trip_is_exact(cli, write_config, tmp_path):
    source = {
        "name": "digits",
        "seed": 5,
        "model": {"type": "cnn", "filters": [4], "dense_units": [8]},
        "data": {"type": "digits", "image": True},
    }
    out = tmp_path / "records"
    text = cli("data", "convert", write_config(source), "--to", "tfrecord", out, "--shards", "3")
    assert "train:" in text.stdout and len(list(out.glob("train-*.tfrecord"))) == 3
    original = build_dataset(config_from_dict(source))
    copy = build_dataset(
        config_from_dict({**source, "data": {"type": "tfrecord", "path": str(out)}})
    )
    assert copy.spec() == original.spec()
    for split in ("train", "valid", "test"):
        (x0, y0), (x1, y1) = original.arrays(split), copy.arrays(split)
        assert x1.dtype == x0.dtype and y1.dtype == y0.dtype
        np.testing.assert_array_equal(x1, x0)
        np.testing.assert_array_equal(y1, y0)
    # Unshuffled batches are identical; shuffled ones are a seeded permutation per epoch.
    a = [b[0].numpy() for b in original.batches("valid", 50)]
    b = [b[0].numpy() for b in copy.batches("valid", 50)]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))

    def epoch_labels(epoch, skip=0):
        batches = copy.batches("train", 32, epoch=epoch, skip=skip, shuffle=True)
        return np.concatenate([labels.numpy() for _, labels in batches])

    first, again, second = epoch_labels(0), epoch_labels(0), epoch_labels(1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    assert sorted(first) == sorted(original.arrays("train")[1])
    np.testing.assert_array_equal(epoch_labels(1, skip=3), second[3 * 32 :])


def test_tfrecord_config_passes_the_smoke_test(cli, write_config, image_folder, tmp_path):
    out = tmp_path / "records"
    cli(
        "data",
        "convert",
        image_folder,
        "--to",
        "tfrecord",
        out,
        "--shards",
        "2",
        "--set",
        "valid_fraction=0.2",
    )
    config = folder_config(out)
    config["data"] = {"type": "tfrecord", "path": str(out), "augment": {"horizontal_flip": True}}
    text = cli("fit", write_config(config), "--smoke", "--quiet").stdout
    assert "smoke: resume ok" in text and "smoke: export ok" in text


def augment_dataset(**augment):
    config = {
        "name": "aug",
        "seed": 7,
        "model": {"type": "cnn"},
        "data": {"type": "digits", "image": True, "augment": augment},
    }
    return build_dataset(config_from_dict(config))


def test_augmentation_is_train_only_seeded_and_resumable():
    dataset = augment_dataset(horizontal_flip=True)

    def features(batches):
        return np.concatenate([f.numpy() for f, _ in batches])

    plain = features(dataset.batches("train", 64, epoch=2, shuffle=True))
    augmented = features(dataset.training_batches("train", 64, epoch=2, shuffle=True))
    again = features(dataset.training_batches("train", 64, epoch=2, shuffle=True))
    other_epoch = features(dataset.training_batches("train", 64, epoch=3, shuffle=True))
    np.testing.assert_array_equal(augmented, again)  # same seed and epoch: same images
    # Every augmented image is the original or its mirror image, and both kinds occur.
    same = np.all(np.isclose(augmented, plain, atol=1e-6), axis=(1, 2, 3))
    mirrored = np.all(np.isclose(augmented, plain[:, :, ::-1], atol=1e-6), axis=(1, 2, 3))
    assert np.all(same | mirrored)
    symmetric = np.all(np.isclose(plain, plain[:, :, ::-1]), axis=(1, 2, 3))
    flipped = mirrored & ~same & ~symmetric
    assert 0.3 < flipped.mean() < 0.7
    assert other_epoch.shape == augmented.shape and not np.array_equal(other_epoch, augmented)
    # Resuming at batch 3 gives exactly the rest of the epoch's augmented batches.
    resumed = features(dataset.training_batches("train", 64, epoch=2, skip=3, shuffle=True))
    np.testing.assert_array_equal(resumed, augmented[3 * 64 :])
    # Evaluation batches (any split) are never augmented.
    np.testing.assert_array_equal(
        features(dataset.batches("valid", 64)), dataset.arrays("valid")[0] / 16.0
    )
    # Another seed gives other draws.
    reseeded = augment_dataset(horizontal_flip=True, seed=99)
    assert not np.array_equal(
        features(reseeded.training_batches("train", 64, epoch=2, shuffle=True)), augmented
    )


def test_crop_and_colour_jitter_keep_shape_and_range(image_folder):
    from tftrain.data.augment import AugmentConfig, augment_images

    images = np.random.default_rng(0).random((6, 12, 12, 3)).astype(np.float32)
    config = AugmentConfig(crop_padding=2, brightness=0.2, contrast=0.3, saturation=0.3, hue=0.1)
    out = augment_images(images, config, seed=[1, 2]).numpy()
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, augment_images(images, config, seed=[1, 2]).numpy())
    # A crop with padding p is a shift by at most p pixels: with only cropping on, each image
    # is its original shifted and zero-filled.
    shifted = augment_images(images, AugmentConfig(crop_padding=2), seed=[3, 4]).numpy()
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)])
    for original, cropped in zip(padded, shifted, strict=True):
        assert any(
            np.array_equal(original[r : r + 12, c : c + 12], cropped)
            for r in range(5)
            for c in range(5)
        )


def test_saturation_on_grayscale_is_a_config_error(cli, write_config):
    config = {
        "model": {"type": "cnn"},
        "data": {"type": "digits", "image": True, "augment": {"saturation": 0.2}},
    }
    result = cli("fit", write_config(config), "--smoke", "--quiet", expect=2)
    assert "need RGB images" in result.stderr


def test_inspect_prints_splits_and_writes_a_grid(cli, write_config, image_folder, tmp_path):
    import tensorflow as tf

    config = folder_config(image_folder, augment={"horizontal_flip": True, "crop_padding": 2})
    grid = tmp_path / "grid.png"
    text = cli("data", "inspect", write_config(config), "--grid", grid, "--augmented").stdout
    assert "class names: bars, dots, square" in text
    assert "uint8 [12, 12, 3]" in text and "label counts:" in text
    image = tf.io.decode_png(grid.read_bytes()).numpy()
    # 36 examples, 12x12 images zoomed 4x plus a 9-pixel label strip, 2-pixel borders.
    train = int(text.split("train")[1].split()[0])
    columns = int(np.ceil(np.sqrt(train)))
    assert image.shape == (
        int(np.ceil(train / columns)) * (48 + 9 + 2) + 2,
        columns * (48 + 2) + 2,
        3,
    )
