"""MLP training throughput: tftrain's loop vs Keras `model.fit` on the same network and data.

Same data (MNIST from ../shared/data when present, else the bundled digits tiled to 20k
examples), same network (784-500-10 or 64-500-10), same optimizer, same batch size (100).
The first epoch of each is a warm-up (tracing); the following epochs are timed.
"""

from __future__ import annotations

import numpy as np

from bench.common import SHARED_DATA, table, timed

BATCH = 100
EPOCHS = 3


def config_tree(data: dict, steps_per_loop: int) -> dict:
    return {
        "name": "bench_mlp",
        "model": {"type": "softmax", "hidden_units": [500]},
        "data": data,
        "train": {
            "batch_size": BATCH,
            "epochs": EPOCHS + 1,
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


def tftrain_rate(tree: dict, run_dir: str) -> tuple[float, int, object]:
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    trainer = Trainer(config_from_dict(tree), run_dir, quiet=True)
    trainer.run_epoch("train", training=True)  # warm-up: traces the step
    trainer.epoch.assign(1)
    trainer.step_in_epoch.assign(0)
    examples = trainer.dataset.num_examples("train")
    seconds = 0.0
    for epoch in range(EPOCHS):
        trainer.epoch.assign(epoch + 1)
        trainer.step_in_epoch.assign(0)
        seconds += timed(trainer.run_epoch, "train", training=True)
    return EPOCHS * examples / seconds, examples, trainer


def keras_rate(trainer, steps_per_execution: int) -> float:
    import keras

    x, y = trainer.dataset.arrays("train")
    x = (
        x.astype(np.float32) - np.asarray(trainer.spec.transform["shift"], np.float32)
    ) * np.asarray(trainer.spec.transform["scale"], np.float32)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Dense(500, activation="relu"),
            keras.layers.Dense(trainer.spec.num_classes),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    seconds = timed(model.fit, x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    return EPOCHS * len(x) / seconds


def main() -> None:
    import tempfile

    data, label = data_section()
    rows = []
    with tempfile.TemporaryDirectory() as run_dir:
        for steps in (1, 50):
            ours, examples, trainer = tftrain_rate(config_tree(data, steps), f"{run_dir}/{steps}")
            theirs = keras_rate(trainer, steps)
            rows.append(
                (
                    f"{label}, steps per call {steps}",
                    f"{ours:,.0f}",
                    f"{theirs:,.0f}",
                    f"{ours / theirs:.2f}",
                )
            )
    print(f"MLP 500 hidden, batch {BATCH}, SGD, {EPOCHS} timed epochs (examples/second)")
    print(table(rows, ("setting", "tftrain", "keras fit", "ratio")))


if __name__ == "__main__":
    main()
