"""Array files: MNIST-style IDX files and NumPy .npz archives, sized from their headers only."""

from __future__ import annotations

import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np

from tftrain.data.idx import FILES
from tftrain.errors import ConfigError, DataError
from tftrain.init.proposal import Proposal, Setting, batch_size


def idx_shape(path: Path) -> tuple[int, ...]:
    """The dimensions an IDX file's header declares (magic 0x0000TTDD, then DD sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0":
                raise DataError(f"{path} is not an IDX file (magic {magic.hex()})")
            dims = magic[3]
            return struct.unpack(f">{dims}I", handle.read(4 * dims))
    except (OSError, EOFError, struct.error) as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from None


def idx_files(folder: Path) -> dict[str, Path] | None:
    """The four MNIST files of a folder (gzipped or not), or None if any is missing."""
    found = {}
    for images, labels in FILES.values():
        for stem in (images, labels):
            paths = [folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")]
            path = next((p for p in paths if p.exists()), None)
            if path is None:
                return None
            found[stem] = path
    return found


def is_idx_file(path: Path) -> bool:
    return "idx" in path.name and ("ubyte" in path.name or path.suffix == ".gz")


def idx_proposal(folder: Path, options, name: str) -> Proposal:
    files = idx_files(folder)
    if files is None:
        expected = ", ".join(f"{s}(.gz)" for pair in FILES.values() for s in pair)
        raise ConfigError(
            f"usage error: {folder} does not hold the four MNIST-style IDX files ({expected})"
        )
    train_shape = idx_shape(files[FILES["train"][0]])
    test_shape = idx_shape(files[FILES["test"][0]])
    valid = min(5000, train_shape[0] // 10)
    model = options.model or "cnn"
    image = "x".join(map(str, train_shape[1:]))
    models = {
        "cnn": [
            Setting("type", "cnn", "or softmax (an MLP), lstm (rows as steps)"),
            Setting("filters", [32, 64], "3x3 convs, each followed by a 2x2 max pool"),
            Setting("dense_units", [128]),
            Setting("dropout", 0.3),
        ],
        "softmax": [Setting("type", "softmax"), Setting("hidden_units", [500])],
        "lstm": [
            Setting("type", "lstm"),
            Setting("task", "classification"),
            Setting("num_layers", 1),
            Setting("hidden_size", 128),
        ],
    }
    return Proposal(
        summary=f"Image classification on the MNIST-style IDX files in {folder.name}",
        name=name,
        task="classification",
        reason="the folder holds IDX image and label files (the MNIST layout)",
        facts=[
            f"Read the headers: {train_shape[0]:,} training and {test_shape[0]:,} test images "
            f"of {image} pixels.",
        ],
        model=models[model],
        data=[
            Setting("type", "idx"),
            Setting("path", str(folder), "the folder of the four files"),
            Setting("flatten", model == "softmax", "false: keep images as HxWx1"),
            Setting("valid_count", valid, "the last training images validate"),
        ],
        train=[
            Setting("batch_size", 100),
            Setting("epochs", 5),
            Setting("steps_per_loop", 50),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.001}),
        ],
        checkpoint=[Setting("best_metric", "accuracy")],
    )


def npz_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{name: (shape, dtype)} of every array, read from the .npy headers only."""
    shapes = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(handle)
                shapes[member[:-4]] = (shape, dtype)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read NPZ file {path}: {error}") from None
    if not shapes:
        raise DataError(f"{path} holds no arrays")
    return shapes


def npz_proposal(path: Path, options, name: str) -> Proposal:
    shapes = npz_shapes(path)
    if "x" in shapes and "y" in shapes:
        x_key, y_key = "x", "y"
    else:
        inputs = [k for k, (shape, _) in shapes.items() if len(shape) >= 2]
        labels = [k for k, (shape, _) in shapes.items() if len(shape) == 1]
        if len(inputs) != 1 or len(labels) != 1:
            raise ConfigError(
                f"usage error: cannot tell the inputs and labels of {path} apart (arrays: "
                + ", ".join(f"{k} {shapes[k][0]}" for k in shapes)
                + "); name them x and y"
            )
        x_key, y_key = inputs[0], labels[0]
    (x_shape, x_dtype), (y_shape, y_dtype) = shapes[x_key], shapes[y_key]
    if x_shape[:1] != y_shape[:1]:
        raise DataError(f"{path}: {x_key} has {x_shape[0]} rows but {y_key} has {y_shape[0]}")
    integer = np.issubdtype(y_dtype, np.integer)
    task = options.task or ("classification" if integer else "regression")
    if task == "classification" and not integer:
        raise ConfigError(f"usage error: classification needs integer labels; {y_key} is {y_dtype}")
    if task not in ("classification", "regression"):
        raise ConfigError(f"usage error: --task {task} does not fit an NPZ of x/y arrays")
    return Proposal(
        summary=f"{task.capitalize()} on the arrays of {path.name}: {x_key} {x_shape} -> {y_key}",
        name=name,
        task=task,
        reason=f"{y_key} holds {'integers (class ids)' if integer else 'real numbers'}",
        facts=[f"Read the headers: {x_key} {x_shape} {x_dtype}, {y_key} {y_shape} {y_dtype}."],
        model=npz_model(task, len(x_shape), options.model),
        data=[
            Setting("type", "npz"),
            Setting("path", str(path)),
            Setting("x_key", x_key),
            Setting("y_key", y_key),
            Setting("task", task),
            Setting("standardize", len(x_shape) == 2, "feature mean/std from training rows"),
            Setting("valid_fraction", 0.1),
            Setting("test_fraction", 0.2),
        ],
        train=[
            Setting("batch_size", batch_size(x_shape[0])),
            Setting("epochs", 20),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.002}),
            Setting("early_stopping", {"patience": 5, "metric": "loss"}),
        ],
        checkpoint=[Setting("best_metric", "accuracy" if task == "classification" else "loss")],
    )


def npz_model(task: str, x_dims: int, model: str | None) -> list[Setting]:
    """cnn for (n, H, W, C) images, lstm for (n, steps, features), else an MLP or linear."""
    if model == "lstm" or (model is None and x_dims == 3):
        return [
            Setting("type", "lstm", "rows of each example are its time steps"),
            Setting("task", task),
            Setting("num_layers", 1),
            Setting("hidden_size", 64),
        ]
    if task == "regression":
        return [Setting("type", "linear")]
    if model == "cnn" or (model is None and x_dims == 4):
        return [
            Setting("type", "cnn"),
            Setting("filters", [32, 64]),
            Setting("dense_units", [128]),
            Setting("dropout", 0.3),
        ]
    return [Setting("type", "softmax", "an MLP"), Setting("hidden_units", [64])]
