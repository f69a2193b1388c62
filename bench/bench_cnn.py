"""CNN training throughput: tftrain's loop vs Keras `model.fit` on the same network and data.

Same network (the `lenet5` preset: conv 32, conv 64, dense 512, dropout; built by the cnn model
class for both), same data (the first 4,000 MNIST training images from ../shared/data when
present, else random 28x28 images), same optimizer (Adam) and batch size (100), the same steps
per compiled call. The first epoch of each is a warm-up (tracing); then runs() epochs of the two
alternate, each pair giving a ratio (tftrain examples/s over Keras'). Keras gets a `tf.data`
pipeline of the normalised arrays, built once, so each timed `fit` call is one epoch.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from bench.common import SHARED_DATA, compare, runs, train_epoch, warmed_trainer

BATCH = 100
EXAMPLES = 4000


def images() -> tuple[np.ndarray, np.ndarray, str]:
    mnist = SHARED_DATA / "mnist"
    if (mnist / "train-images-idx3-ubyte.gz").exists():
        from tftrain.data.idx import read_idx

        x = read_idx(mnist / "train-images-idx3-ubyte.gz")[:EXAMPLES, :, :, None]
        y = read_idx(mnist / "train-labels-idx1-ubyte.gz")[:EXAMPLES].astype(np.int32)
        return x, y, f"MNIST first {EXAMPLES:,}"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (EXAMPLES, 28, 28, 1), dtype=np.uint8)
    return x, rng.integers(0, 10, EXAMPLES).astype(np.int32), f"random {EXAMPLES:,}"


def config_tree(path: Path, steps_per_loop: int) -> dict:
    return {
        "name": "bench_cnn",
        "model": {"type": "cnn", "preset": "lenet5"},
        "data": {
            "type": "npz",
            "path": str(path),
            "valid_fraction": 0.0,
            "test_fraction": 0.0,
            "standardize": True,
        },
        "train": {
            "batch_size": BATCH,
            "epochs": runs() + 1,
            "steps_per_loop": steps_per_loop,
            "log_every_steps": 10**6,
            "optimizer": {"name": "adam", "learning_rate": 0.001},
        },
        "summaries": {"enabled": False},
    }


def keras_epoch(trainer, steps_per_execution: int):
    """The same network in Keras, warmed up by one epoch, and a function training one more."""
    import keras
    import tensorflow as tf

    from tftrain.registry import build_model

    x, y = trainer.dataset.arrays("train")
    x = x.astype(np.float32)
    if trainer.setup.spec.transform:  # the same normalisation tftrain's pipeline applies
        shift = np.asarray(trainer.setup.spec.transform["shift"], np.float32)
        x = (x - shift) * np.asarray(trainer.setup.spec.transform["scale"], np.float32)
    model = build_model(trainer.config, trainer.setup.spec).network  # a fresh copy of the network
    model.compile(
        optimizer=keras.optimizers.Adam(0.001),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    # Built once, so each timed fit call is an epoch, not a conversion of the numpy arrays.
    data = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=0)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    model.fit(data, epochs=1, shuffle=False, verbose=0)  # warm-up
    return lambda run: model.fit(data, epochs=1, shuffle=False, verbose=0)


def main() -> None:
    x, y, label = images()
    print(f"CNN lenet5 (1.66M parameters), batch {BATCH}, Adam, {runs()} alternated epochs")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.npz"
        np.savez(path, x=x, y=y)
        for steps, setting in ((1, "1 step per call"), (50, "50 steps per call")):
            trainer = warmed_trainer(config_tree(path, steps), f"{folder}/run{steps}")
            compare(
                "cnn",
                setting,
                ours=partial(train_epoch, trainer),
                theirs=keras_epoch(trainer, steps),
                work=trainer.dataset.num_examples("train"),
                peer="keras fit",
                unit="examples/s",
                data=label,
                batch=BATCH,
            )


if __name__ == "__main__":
    main()
