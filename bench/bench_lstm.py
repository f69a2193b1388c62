"""Words/second of tftrain's language-model training vs the same model under Keras `fit`.

Same data (the synthetic language laid out as the PTB producer does), same 2 x 200 LSTM, same
batch 20 x num_steps 20, SGD with clipping; Keras uses `stateful=True` layers and `fit` with
`shuffle=False`, which carries the state from batch to batch as tftrain's loop does.
"""

from __future__ import annotations

import tempfile
import time

STEPS = 150
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
            "epochs": 1,
            "max_steps": STEPS,
            "steps_per_loop": 50,
            "log_every_steps": 50,
            "clip_grad_norm": 5.0,
            "optimizer": {"name": "sgd", "learning_rate": 1.0},
        },
        "summaries": {"enabled": False},
        "eval": {"final_splits": []},
        "checkpoint": {"best_metric": None},
    }


def ours() -> float:
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config_from_dict(tree()), run_dir, quiet=True)
        started = time.perf_counter()
        trainer.fit()
        elapsed = time.perf_counter() - started
        steps = int(trainer.step.numpy())
    return steps * BATCH * NUM_STEPS / elapsed


def keras_fit() -> float:
    import keras

    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import build_dataset

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
    )
    model.fit(x[: BATCH * 5], y[: BATCH * 5], batch_size=BATCH, shuffle=False, verbose=0)  # warm
    started = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    return len(x) * NUM_STEPS / (time.perf_counter() - started)


def main() -> None:
    a, b = ours(), keras_fit()
    print(f"{'trainer':<22}{'words/s':>10}")
    print(f"{'tftrain fit':<22}{a:>10.0f}")
    print(f"{'keras model.fit':<22}{b:>10.0f}")
    print(
        f"ratio tftrain/keras: {a / b:.2f}  ({LAYERS}x{HIDDEN} LSTM, vocab {VOCAB}, "
        f"batch {BATCH}x{NUM_STEPS}, {STEPS} steps; tftrain time includes its first trace)"
    )


if __name__ == "__main__":
    main()
