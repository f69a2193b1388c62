"""The cnn model: presets and their parameter counts, layer tables, config errors, and
training on image-shaped digits / IDX / NPZ data."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from tests.conftest import PROJECT
from tftrain.data.base import DataSpec
from tftrain.errors import ConfigError
from tftrain.models.cnn import CnnConfig, ConvNet
from tftrain.schema import Sources, build


def network(overrides: dict, input_shape=(28, 28, 1), num_classes=10):
    config = build(CnnConfig, {"type": "cnn", **overrides}, "model", Sources({}, "test"))
    spec = DataSpec(task="classification", input_shape=input_shape, num_classes=num_classes)
    return ConvNet(config, spec).network


def conv(kernel, inputs, filters):
    return kernel * kernel * inputs * filters + filters


def dense(inputs, units):
    return inputs * units + units


def test_preset_parameter_counts_match_hand_counts():
    # LeNet-5 (book variant) on 28x28x1: SAME convs, two 2x2 pools -> 7x7x64 = 3136 features.
    lenet5 = conv(5, 1, 32) + conv(5, 32, 64) + dense(7 * 7 * 64, 512) + dense(512, 10)
    assert lenet5 == 1_663_370
    assert network({"preset": "lenet5"}).count_params() == lenet5
    # Deep MNIST: the same convs, dense 1024.
    deep = conv(5, 1, 32) + conv(5, 32, 64) + dense(3136, 1024) + dense(1024, 10)
    assert network({"preset": "deep_mnist"}).count_params() == deep == 3_274_634
    # LeNet-5 1998: C1 28x28x6 (SAME), S2 14x14, C3 VALID 10x10x16, S4 5x5x16 = 400 features.
    original = conv(5, 1, 6) + conv(5, 6, 16) + dense(400, 120) + dense(120, 84) + dense(84, 10)
    assert network({"preset": "lenet5_original"}).count_params() == original == 61_706


def test_keys_override_a_preset():
    # deep_mnist with a 512-unit dense layer is the lenet5 network.
    model = network({"preset": "deep_mnist", "dense_units": [512]})
    assert model.count_params() == 1_663_370
    # 32x32x3 input, 3x3 kernels, batch norm (no conv bias; gamma, beta, mean, variance).
    model = network(
        {"preset": "lenet5", "kernel_size": [3], "batch_norm": True}, input_shape=(32, 32, 3)
    )
    expected = (
        (3 * 3 * 3 * 32 + 4 * 32) + (3 * 3 * 32 * 64 + 4 * 64) + dense(8 * 8 * 64, 512)
    ) + dense(512, 10)
    assert model.count_params() == expected


def test_models_cnn_prints_layer_tables(cli):
    text = cli("models", "cnn").stdout
    assert "preset lenet5;" in text and "preset deep_mnist;" in text
    assert "1,663,370" in text and "3,274,634" in text and "61,706" in text
    text = cli("models", "cnn", "--set", "preset=lenet5_original").stdout
    assert "(10, 10, 16)" in text and "(5, 5, 16)" in text  # VALID conv then pool
    assert "preset lenet5;" not in text
    text = cli("models", "cnn", "--set", "input_shape=[32,32,3]", "--set", "preset=lenet5").stdout
    assert "(8, 8, 64)" in text and f"{conv(5, 3, 32):,}" in text


def test_layer_key_lengths_and_flat_inputs_are_config_errors(cli, write_config):
    bad = write_config(
        {
            "model": {"type": "cnn", "filters": [8, 16, 32], "kernel_size": [3, 5]},
            "data": {"type": "digits", "image": True},
        }
    )
    result = cli("config", "validate", bad, expect=2)
    assert "model.kernel_size" in result.stderr and "one per layer" in result.stderr
    with pytest.raises(ConfigError, match="data.flatten: false"):
        network({}, input_shape=(784,))
    result = cli("models", "cnn", "--set", "preset=lenet6", expect=2)
    assert "did you mean 'lenet5'" in result.stderr


def digits_config(**data):
    return {
        "name": "cnn_digits_test",
        "seed": 1,
        "model": {
            "type": "cnn",
            "filters": [16],
            "kernel_size": [3],
            "dense_units": [32],
            "dropout": 0.0,
        },
        "data": {"type": "digits", "image": True, **data},
        "train": {
            "batch_size": 32,
            "epochs": 3,
            "steps_per_loop": 10,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
        },
    }


def test_digits_images_train_and_predict_npz_through_the_base_reader(cli, write_config, tmp_path):
    run = tmp_path / "run"
    cli("fit", write_config(digits_config()), "--run-dir", run, "--quiet")
    spec = json.loads((run / "data_spec.json").read_text())
    assert spec["input_shape"] == [8, 8, 1] and spec["extra"]["pixel_max"] == 16.0
    metrics = json.loads(cli("eval", run, "--json").stdout)
    assert metrics["accuracy"] > 0.9
    from sklearn.datasets import load_digits

    bunch = load_digits()
    np.savez(tmp_path / "some.npz", x=bunch.data[:20].reshape(20, 8, 8, 1))
    lines = cli("predict", run, tmp_path / "some.npz").stdout.splitlines()
    assert lines[0].startswith("class_id") and len(lines) == 21
    predicted = [int(line.split(",")[0]) for line in lines[1:]]
    assert np.mean(np.asarray(predicted) == bunch.target[:20]) >= 0.8


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_with_flatten_false_gives_image_shape_and_trains(cli, write_config, tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, count in (("train", 120), ("t10k", 40)):
        labels = rng.integers(0, 2, count)
        images = rng.integers(0, 60, (count, 10, 10))
        images[labels == 1, :, :5] += 190  # class 1: bright left half
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels)
    config = digits_config()
    config["data"] = {"type": "idx", "path": str(folder), "flatten": False, "valid_count": 40}
    run = tmp_path / "run"
    cli("fit", write_config(config), "--run-dir", run, "--quiet")
    spec = json.loads((run / "data_spec.json").read_text())
    assert spec["input_shape"] == [10, 10, 1]
    assert json.loads(cli("eval", run, "--json").stdout)["accuracy"] >= 0.95


@pytest.mark.slow
def test_cnn_digits_config_reaches_097_quickly(tmp_path):
    import time

    from tests.conftest import run_tftrain

    started = time.perf_counter()
    result = run_tftrain(
        "fit", PROJECT / "configs/cnn_digits.yaml", "--run-dir", tmp_path / "run", "--quiet"
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    test_line = next(line for line in result.stdout.splitlines() if line.startswith("test:"))
    accuracy = float(test_line.split("accuracy")[1].split()[0])
    assert accuracy >= 0.97
    assert elapsed < 120
