"""Readers and splits: CSV, NPZ, IDX, built-ins; deterministic, resumable batch order."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from tftrain.config import config_from_dict
from tftrain.errors import ConfigError, DataError
from tftrain.registry import build_dataset


def dataset(data: dict, seed: int = 0):
    config = config_from_dict({"model": {"type": "softmax"}, "data": data, "seed": seed})
    return build_dataset(config)


def write_idx(path, array: np.ndarray, compress: bool):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        struct.pack(">I", n) for n in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def make_mnist(folder, compress=True, n_train=60, n_test=20):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / (name + suffix), array, compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reads_mnist_layout_and_holds_out_the_last_images(tmp_path, compress):
    arrays = make_mnist(tmp_path, compress)
    data = dataset({"type": "idx", "path": str(tmp_path), "valid_count": 10})
    train_x, train_y = data.arrays("train")
    valid_x, valid_y = data.arrays("valid")
    test_x, _ = data.arrays("test")
    assert train_x.shape == (50, 784) and valid_x.shape == (10, 784) and test_x.shape == (20, 784)
    # The tutorials validate on the *last* images of the training file, in order.
    np.testing.assert_array_equal(valid_x, arrays["train-images-idx3-ubyte"][-10:].reshape(10, -1))
    np.testing.assert_array_equal(train_y, arrays["train-labels-idx1-ubyte"][:50])
    features, labels = next(iter(data.batches("valid", 4)))
    np.testing.assert_allclose(features.numpy(), valid_x[:4] / 255.0, rtol=1e-6)
    assert data.spec().input_shape == (784,) and data.spec().num_classes == 10
    images = dataset({"type": "idx", "path": str(tmp_path), "flatten": False, "valid_count": 10})
    assert images.spec().input_shape == (28, 28, 1)


def test_idx_truncated_file_names_the_file(tmp_path):
    make_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated or corrupt"):
        dataset({"type": "idx", "path": str(tmp_path)}).spec()


def test_idx_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data file not found"):
        dataset({"type": "idx", "path": str(tmp_path / "nope")}).spec()


def test_csv_header_label_column_and_string_classes(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("a,species,b\n1,cat,2\n3,dog,4\n5,cat,6\n7,bird,8\n9,dog,10\n")
    data = dataset(
        {
            "type": "csv",
            "path": str(path),
            "label_column": "species",
            "test_fraction": 0.0,
            "valid_fraction": 0.0,
            "standardize": False,
        }
    )
    x, y = data.arrays("train")
    spec = data.spec()
    assert spec.feature_names == ["a", "b"]
    assert spec.class_names == ["cat", "dog", "bird"]
    order = np.argsort(x[:, 0])
    np.testing.assert_array_equal(x[order], [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]])
    np.testing.assert_array_equal(y[order], [0, 1, 0, 2, 1])


def test_csv_standardizes_on_train_statistics(tmp_path):
    path = tmp_path / "r.csv"
    rows = "\n".join(f"{i},{2 * i + 1}" for i in range(100))
    path.write_text("x,y\n" + rows + "\n")
    data = dataset({"type": "csv", "path": str(path), "task": "regression"})
    train_x, _ = data.arrays("train")
    features, _ = next(iter(data.batches("train", 1000)))
    assert abs(float(features.numpy().mean())) < 1e-5
    assert abs(float(features.numpy().std()) - 1.0) < 1e-4
    assert data.spec().transform["shift"][0] == pytest.approx(train_x.mean(), rel=1e-6)


def test_csv_bad_value_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,0\n3,oops,1\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3: non-numeric feature value 'oops'"):
        dataset({"type": "csv", "path": str(path)}).spec()
    path.write_text("a,b,label\n1,2,0\n3,1\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3: 2 fields, expected 3"):
        dataset({"type": "csv", "path": str(path)}).spec()


def test_npz_splits_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "train.npz", x=rng.random((40, 3)), y=rng.integers(0, 3, 40))
    np.savez(tmp_path / "test.npz", x=rng.random((10, 3)), y=rng.integers(0, 3, 10))
    data = dataset(
        {
            "type": "npz",
            "path": str(tmp_path / "train.npz"),
            "test_path": str(tmp_path / "test.npz"),
        }
    )
    assert data.num_examples("test") == 10
    assert data.num_examples("train") + data.num_examples("valid") == 40
    np.savez(tmp_path / "wrong.npz", features=rng.random((4, 3)))
    with pytest.raises(DataError, match="has no array 'x'"):
        dataset({"type": "npz", "path": str(tmp_path / "wrong.npz")}).spec()
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="cannot read NPZ file .*corrupt.npz"):
        dataset({"type": "npz", "path": str(tmp_path / "corrupt.npz")}).spec()


def test_batch_order_is_a_function_of_seed_and_epoch_and_skip_resumes_it():
    data = dataset({"type": "digits"}, seed=3)

    def labels(epoch, skip=0):
        batches = data.batches("train", 64, epoch=epoch, skip=skip, shuffle=True)
        return np.concatenate([y.numpy() for _, y in batches])

    first = labels(0)
    assert np.array_equal(first, labels(0))  # same seed and epoch: same order
    assert not np.array_equal(first, labels(1))  # a new epoch reshuffles
    np.testing.assert_array_equal(labels(0, skip=3), first[3 * 64 :])  # resume mid-epoch
    assert sorted(first) == sorted(data.arrays("train")[1])  # a permutation of the split


def test_synthetic_linear_has_the_configured_plane():
    data = dataset({"type": "synthetic_linear", "noise": 0.0, "weights": [1.0, -2.0], "bias": 0.5})
    x, y = data.arrays("train")
    np.testing.assert_allclose(y, x @ np.array([1.0, -2.0]) + 0.5, rtol=1e-5)
    assert data.spec().task == "regression"
