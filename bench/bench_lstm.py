"""Words/second of tftrain's language-model training vs the same model under Keras `fit`.

Same data (the synthetic language laid out as the PTB producer does), same 2 x 200 LSTM, same
batch 20 x num_steps 20, SGD with clipping; Keras uses `stateful=True` layers and `fit` with
`shuffle=False`, which carries the state from batch to batch as tftrain's loop does. Each
side gets a warm-up epoch (tracing), then timed epochs alternate between the two so that load
from other processes hits both.
"""

from __future__ import annotations

import tempfile

from bench.common import timed, train_epoch, warmed_trainer

STEPS = 150  # per epoch
EPOCHS = 3  # timed, after one warm-up epoch each
STEPS_PER_CALL = 50  # tftrain's train.steps_per_loop and Keras' steps_per_execution
BATCH, NUM_STEPS, HIDDEN, LAYERS, VOCAB = 20, 20, 200, 2, 2000


def tree():
    return {
        "name": "bench_lstm",
        "model": {"type": "lstm", "num_layers": LAYERS, "hidden_size": HIDDEN, "init_scale": 0.1},
        "data": {
            "type": "synthetic_lm",
            "vocab_size": VOCAB,
            "num_topics": 4,
            "train_words": (STEPS + 2) * BATCH * NUM_STEPS + BATCH,
            "valid_words": 0,
            "test_words": 0,
            "num_steps": NUM_STEPS,
        },
        "train": {
            "batch_size": BATCH,
            "epochs": EPOCHS + 1,
            "steps_per_loop": STEPS_PER_CALL,
            "log_every_steps": 50,
            "clip_grad_norm": 5.0,
            "optimizer": {"name": "sgd", "learning_rate": 1.0},
        },
        "summaries": {"enabled": False},
        "eval": {"final_splits": []},
        "checkpoint": {"best_metric": None},
    }


def keras_model():
    """The same network under Keras fit, and its epoch's (inputs, targets)."""
    import keras

    from tftrain.config import config_from_dict
    from tftrain.registry import build_dataset

    dataset = build_dataset(config_from_dict(tree()))
    x, y = dataset.layout("train", BATCH)
    x, y = x[:STEPS].reshape(-1, NUM_STEPS), y[:STEPS].reshape(-1, NUM_STEPS)
    vocab = dataset.spec().num_classes
    init = keras.initializers.RandomUniform(-0.1, 0.1)
    layers = [keras.Input((NUM_STEPS,), batch_size=BATCH, dtype="int32")]
    layers.append(keras.layers.Embedding(vocab, HIDDEN, embeddings_initializer=init))
    for _ in range(LAYERS):
        layers.append(
            keras.layers.LSTM(HIDDEN, return_sequences=True, stateful=True, kernel_initializer=init)
        )
    layers.append(keras.layers.Dense(vocab, kernel_initializer=init))
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.SGD(1.0, global_clipnorm=5.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=STEPS_PER_CALL,
        jit_compile=False,  # as tftrain's default (device.jit_compile: false)
    )
    model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)  # warm-up epoch
    return model, x, y


def keras_epoch(model, x, y) -> None:
    model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)


def main() -> None:
    words = STEPS * BATCH * NUM_STEPS * EPOCHS
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = warmed_trainer(tree(), run_dir)
        model, x, y = keras_model()
        ours_seconds = peer_seconds = 0.0
        for epoch in range(1, EPOCHS + 1):
            ours_seconds += timed(train_epoch, trainer, epoch)
            peer_seconds += timed(keras_epoch, model, x, y)
    a, b = words / ours_seconds, words / peer_seconds
    print(f"{'trainer':<22}{'words/s':>10}")
    print(f"{'tftrain fit':<22}{a:>10.0f}")
    print(f"{'keras model.fit':<22}{b:>10.0f}")
    print(
        f"ratio tftrain/keras: {a / b:.2f}  ({LAYERS}x{HIDDEN} LSTM, vocab {VOCAB}, "
        f"batch {BATCH}x{NUM_STEPS}, {STEPS_PER_CALL} steps per call, {EPOCHS} alternating "
        f"epochs of {STEPS} steps after a warm-up epoch each)"
    )


if __name__ == "__main__":
    main()
