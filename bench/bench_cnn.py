"""CNN training throughput: tftrain's loop vs Keras `model.fit` on the same network and data.

Same network (the `lenet5` preset: conv 32, conv 64, dense 512, dropout; built by the cnn model
class for both), same data (the first 4,000 MNIST training images from ../shared/data when
present, else random 28x28 images), same optimizer (Adam) and batch size (100), the same steps
per compiled call. The first epoch of each is a warm-up (tracing); the next epochs are timed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.common import SHARED_DATA, table, timed

BATCH = 100
EPOCHS = 2
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
            "epochs": EPOCHS + 1,
            "steps_per_loop": steps_per_loop,
            "log_every_steps": 10**6,
            "optimizer": {"name": "adam", "learning_rate": 0.001},
        },
        "summaries": {"enabled": False},
    }


def tftrain_rate(tree: dict, run_dir: str):
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    trainer = Trainer(config_from_dict(tree), run_dir, quiet=True)
    trainer.loop.run_epoch("train", training=True)  # warm-up: traces the step
    examples = trainer.dataset.num_examples("train")
    seconds = 0.0
    for epoch in range(EPOCHS):
        trainer.state.epoch.assign(epoch + 1)
        trainer.state.step_in_epoch.assign(0)
        seconds += timed(trainer.loop.run_epoch, "train", training=True)
    return EPOCHS * examples / seconds, trainer


def keras_rate(trainer, steps_per_execution: int) -> float:
    import keras

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
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    seconds = timed(model.fit, x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    return EPOCHS * len(x) / seconds


def main() -> None:
    x, y, label = images()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.npz"
        np.savez(path, x=x, y=y)
        for steps in (1, 50):
            ours, trainer = tftrain_rate(config_tree(path, steps), f"{folder}/run{steps}")
            theirs = keras_rate(trainer, steps)
            rows.append(
                (
                    f"{label}, steps per call {steps}",
                    f"{ours:,.0f}",
                    f"{theirs:,.0f}",
                    f"{ours / theirs:.2f}",
                )
            )
    print(f"CNN lenet5 (1.66M parameters), batch {BATCH}, Adam, {EPOCHS} timed epochs")
    print("examples/second; ratio = tftrain / keras fit")
    print(table(rows, ("setting", "tftrain", "keras fit", "ratio")))


if __name__ == "__main__":
    main()
