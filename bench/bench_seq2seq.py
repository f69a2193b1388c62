"""seq2seq training throughput: tftrain's loop vs Keras `model.fit` on the same network and data.

Same task (the built-in dates task, 8,000 training pairs, bucketed batches of 64 from the same
`tf.data` pipeline), same network class (bidirectional LSTM encoder, Bahdanau attention, full
softmax), same optimizer (Adam, global-norm clipping 5). Throughput is target tokens (non-pad
labels, </s> included) per second. The first epoch of each is a warm-up (tracing); then runs()
epochs of the two alternate, so that load from other jobs hits both; each pair gives a ratio
(tftrain target tokens/s over Keras').
"""

from __future__ import annotations

import tempfile
import warnings
from functools import partial

import numpy as np

from bench.common import compare, runs, train_epoch, warmed_trainer

BATCH = 64
STEPS_PER_LOOP = 20


def config_tree() -> dict:
    return {
        "name": "bench_seq2seq",
        "seed": 42,
        "model": {
            "type": "seq2seq",
            "embedding_dim": 64,
            "units": 128,
            "bidirectional": True,
            "attention": "bahdanau",
        },
        "data": {
            "type": "synthetic_pairs",
            "task": "dates",
            "target_tokens": "characters",
            "num_train": 8000,
            "num_valid": 0,
            "num_test": 0,
            "bucket_width": 2,
        },
        "train": {
            "batch_size": BATCH,
            "epochs": runs() + 1,
            "steps_per_loop": STEPS_PER_LOOP,
            "log_every_steps": 10**6,
            "optimizer": {"name": "adam", "learning_rate": 0.005},
            "clip_grad_norm": 5.0,
        },
        "summaries": {"enabled": False},
    }


def target_tokens(dataset) -> int:
    data = dataset.split_data("train")
    return int(np.sum(np.diff(data.target_splits) + 1))


def keras_model(trainer):
    import keras

    from tftrain.registry import build_model

    network = build_model(trainer.config, trainer.setup.spec).network  # a fresh copy, same class

    class Logits(keras.Model):
        def __init__(self):
            super().__init__()
            self.network = network

        def call(self, features, training=False):
            hidden, _ = self.network(features, training=training)
            return self.network.logits(hidden)

    model = Logits()
    model.compile(
        optimizer=keras.optimizers.Adam(0.005, global_clipnorm=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
        steps_per_execution=STEPS_PER_LOOP,
        jit_compile=False,  # as tftrain's default (device.jit_compile: false)
    )
    # Bucketed epochs have no static length; Keras warns when steps_per_execution overruns one.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    keras_epoch(model, trainer.dataset, 0)  # warm-up
    return model


def keras_epoch(model, dataset, epoch: int) -> None:
    batches = dataset.batches("train", BATCH, epoch=epoch, shuffle=True)
    model.fit(batches, epochs=1, shuffle=False, verbose=0)  # the batches are shuffled already


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-seq2seq-") as run_dir:
        trainer = warmed_trainer(config_tree(), run_dir)
        tokens = target_tokens(trainer.dataset)
        print(
            f"seq2seq dates task, {tokens:,} target tokens per epoch, batch {BATCH}, "
            f"{runs()} alternated epochs"
        )
        compare(
            "seq2seq",
            "bucketed epoch",
            ours=partial(train_epoch, trainer),
            theirs=partial(keras_epoch, keras_model(trainer), trainer.dataset),
            work=tokens,
            peer="keras fit",
            unit="target tokens/s",
            batch=BATCH,
        )


if __name__ == "__main__":
    main()
