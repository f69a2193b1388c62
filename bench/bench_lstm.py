"""Words/second of tftrain's language-model training vs the same model under Keras `fit`.

Same data (the synthetic language laid out as the PTB producer does), same 2 x 200 LSTM, same
batch 20 x num_steps 20, SGD with clipping; Keras uses `stateful=True` layers and `fit` with
`shuffle=False`, which carries the state from batch to batch as tftrain's loop does. Each
side gets a warm-up epoch (tracing), then runs() epochs of the two alternate, so that load from
other processes hits both; each pair gives a ratio (tftrain words/s over Keras').
"""

from __future__ import annotations

import tempfile
from functools import partial

from bench.common import compare, runs, train_epoch, warmed_trainer

STEPS = 150  # per epoch
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
            "epochs": runs() + 1,
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


def keras_epoch(model, x, y, run: int) -> None:
    model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)


def main() -> None:
    print(
        f"{LAYERS}x{HIDDEN} LSTM, vocab {VOCAB}, batch {BATCH}x{NUM_STEPS}, {STEPS_PER_CALL} steps "
        f"per call, {runs()} alternated epochs of {STEPS} steps after a warm-up epoch each"
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = warmed_trainer(tree(), run_dir)
        model, x, y = keras_model()
        compare(
            "lstm",
            f"{STEPS_PER_CALL} steps per call",
            ours=partial(train_epoch, trainer),
            theirs=partial(keras_epoch, model, x, y),
            work=STEPS * BATCH * NUM_STEPS,
            peer="keras fit",
            unit="words/s",
        )


if __name__ == "__main__":
    main()
