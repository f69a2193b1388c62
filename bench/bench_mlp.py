"""MLP training throughput: tftrain's loop vs Keras `model.fit` on the same network and data.

Same data (MNIST from ../shared/data when present, else the bundled digits tiled to 20k
examples), same network (784-500-10 or 64-500-10), same optimizer, same batch size (100).
The first epoch of each is a warm-up (tracing); then runs() epochs of the two alternate, and
each pair gives a ratio (tftrain examples/s over Keras'). Epoch times on these machines are
bimodal (the same code takes 1.5 s or 2.6 s), which is why the median and range of the ratios
are reported, not one pair. Keras gets a `tf.data` pipeline of the normalised arrays, built
once, so each timed `fit` call is one epoch.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from bench.common import SHARED_DATA, compare, runs, train_epoch, warmed_trainer

BATCH = 100


def config_tree(data: dict, steps_per_loop: int) -> dict:
    return {
        "name": "bench_mlp",
        "model": {"type": "softmax", "hidden_units": [500]},
        "data": data,
        "train": {
            "batch_size": BATCH,
            "epochs": runs() + 1,
            "steps_per_loop": steps_per_loop,
            "log_every_steps": 10**6,
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
        },
        "summaries": {"enabled": False},
    }


def data_section() -> tuple[dict, str]:
    mnist = SHARED_DATA / "mnist"
    if (mnist / "train-images-idx3-ubyte.gz").exists():
        return {"type": "idx", "path": str(mnist)}, "MNIST 55k"
    return {"type": "digits", "test_fraction": 0.0, "valid_fraction": 0.0}, "digits 1.4k"


def keras_epoch(trainer, steps_per_execution: int):
    """The same network in Keras, warmed up by one epoch, and a function training one more."""
    import keras

    x, y = trainer.dataset.arrays("train")
    x = (
        x.astype(np.float32) - np.asarray(trainer.setup.spec.transform["shift"], np.float32)
    ) * np.asarray(trainer.setup.spec.transform["scale"], np.float32)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Dense(500, activation="relu"),
            keras.layers.Dense(trainer.setup.spec.num_classes),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    import tensorflow as tf

    # Built once, so each timed fit call is an epoch, not a conversion of the numpy arrays.
    data = (
        tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
        .shuffle(len(x), seed=0)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    model.fit(data, epochs=1, shuffle=False, verbose=0)  # warm-up
    return lambda run: model.fit(data, epochs=1, shuffle=False, verbose=0)


def main() -> None:
    import tempfile

    data, label = data_section()
    print(f"MLP 500 hidden on {label}, batch {BATCH}, SGD, {runs()} alternated epochs per setting")
    with tempfile.TemporaryDirectory() as run_dir:
        for steps, setting in ((1, "1 step per call"), (50, "50 steps per call")):
            trainer = warmed_trainer(config_tree(data, steps), f"{run_dir}/{steps}")
            compare(
                "mlp",
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
