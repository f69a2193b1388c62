"""word2vec's fused kernel (tftrain/ops): word2vec's per-pair SGD, reproducible, and chosen
only when the train settings allow it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import PROJECT
from tests.test_resilience import final_weights, fit_command
from tests.test_word2vec import TINY


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_step(inputs, outputs, tokens, noise_word, negatives, rate, cbow):
    """word2vec.c / gensim negative sampling with a window of 1 and no sub-sampling, one pair
    at a time, in NumPy (float64); -1 in `tokens` ends a sentence."""
    inputs, outputs = inputs.astype(np.float64), outputs.astype(np.float64)
    loss, pairs = 0.0, 0

    def train(hidden, target):
        error = np.zeros_like(hidden)
        total = 0.0
        for word, label in [(target, 1.0)] + [(noise_word, 0.0)] * negatives:
            if label == 0.0 and word == target:
                continue
            score = hidden @ outputs[word]
            total += np.logaddexp(0, -score if label else score)
            g = (label - sigmoid(score)) * rate
            error += g * outputs[word]
            outputs[word] += g * hidden
        return error, total

    sentences = " ".join(map(str, tokens)).split("-1")
    for sentence in (list(map(int, s.split())) for s in sentences):
        for i, centre in enumerate(sentence):
            words = sentence[max(i - 1, 0) : i] + sentence[i + 1 : i + 2]
            if not cbow:
                for word in words:  # the context word's vector predicts the centre
                    error, total = train(inputs[word], centre)
                    inputs[word] += error
                    loss, pairs = loss + total, pairs + 1
            elif words:
                error, total = train(inputs[words].mean(axis=0), centre)
                for word in words:
                    inputs[word] += error  # the whole error to each context word, as word2vec.c
                loss, pairs = loss + total, pairs + 1
    return inputs, outputs, loss, pairs


def fused_step(inputs, outputs, tokens, keep, noise, *, window, negatives, rate, cbow=False):
    """Runs the op once on fresh variables; returns (inputs, outputs, loss, pairs, kept)."""
    import tensorflow as tf

    from tftrain import ops
    from tftrain.models.word2vec_sampling import alias_table

    input_table, output_table = tf.Variable(inputs), tf.Variable(outputs)
    accept, alias = alias_table(noise)
    loss, pairs, kept = ops.load("word2vec").word2vec_train_tokens(
        input_table.handle,
        output_table.handle,
        tf.constant(tokens, tf.int32),
        tf.constant(keep, tf.float32),
        accept,
        alias,
        tf.constant([1, 2], tf.int64),
        rate,
        window=window,
        negatives=negatives,
        cbow=cbow,
    )
    return input_table.numpy(), output_table.numpy(), float(loss), float(pairs), float(kept)


@pytest.mark.parametrize("cbow", [False, True])
def test_fused_step_is_word2vecs_per_pair_sgd(cbow):
    rng = np.random.default_rng(3)
    vocabulary, dim, negatives, rate = 7, 5, 3, 0.3
    inputs = rng.normal(scale=0.5, size=(vocabulary, dim)).astype(np.float32)
    outputs = rng.normal(scale=0.5, size=(vocabulary, dim)).astype(np.float32)
    # All noise mass on the last word, so the draws are known; it is also one of the targets.
    noise = np.zeros(vocabulary)
    noise[-1] = 1.0
    tokens = [2, 0, 6, -1, 3, 1, 6, 4]
    got_in, got_out, loss, pairs, kept = fused_step(
        inputs, outputs, tokens, np.ones(vocabulary), noise,
        window=1, negatives=negatives, rate=rate, cbow=cbow,
    )  # fmt: skip
    want_in, want_out, want_loss, want_pairs = reference_step(
        inputs, outputs, tokens, vocabulary - 1, negatives, rate, cbow
    )
    assert kept == 7 and pairs == want_pairs == (7 if cbow else 10)
    # sigmoid and softplus come from 2048-entry tables over [-6, 6], as word2vec's EXP_TABLE.
    np.testing.assert_allclose(loss, want_loss, rtol=2e-3)
    np.testing.assert_allclose(got_in, want_in, atol=2e-3)
    np.testing.assert_allclose(got_out, want_out, atol=2e-3)
    assert not np.allclose(got_in, inputs, atol=1e-2)  # it did train


def test_fused_step_sub_samples_and_draws_reduced_windows():
    rng = np.random.default_rng(4)
    vocabulary, window = 50, 5
    tokens = rng.integers(0, vocabulary, size=20000)
    keep = np.full(vocabulary, 0.5)
    keep[0] = 0.0  # never trained: neither a centre nor a context
    tables = np.zeros((vocabulary, 8), np.float32), np.ones((vocabulary, 8), np.float32)
    got_in, _, _, pairs, kept = fused_step(
        *tables, tokens, keep, np.ones(vocabulary) / vocabulary,
        window=window, negatives=2, rate=0.1,
    )  # fmt: skip
    expected = 0.5 * np.sum(tokens != 0)
    assert abs(kept - expected) < 4 * np.sqrt(expected * 0.25)
    # Reduced windows: 1..5 words each side, uniformly, so 6 context words per centre.
    assert 5.8 < pairs / kept < 6.2
    assert not got_in[0].any() and got_in[1:].any()


def test_fused_step_rejects_ids_outside_the_vocabulary():
    import tensorflow as tf

    table = np.zeros((4, 2), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="token id 9 outside"):
        fused_step(
            table, table, [0, 9], np.ones(4), np.ones(4) / 4, window=1, negatives=1, rate=0.1
        )


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_fused_kernel_recovers_the_groups(tmp_path, cli, write_config, architecture):
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    lr = 0.025 if architecture == "skipgram" else 0.05
    tree = {
        **TINY,
        "model": {**TINY["model"], "architecture": architecture, "kernel": "fused"},
        "train": {**TINY["train"], "optimizer": {"name": "sgd", "learning_rate": lr}},
    }
    assert in_place(Trainer(config_from_dict(tree), tmp_path / "probe"))
    cli("fit", write_config(tree), "--run-dir", tmp_path / "run", "--quiet")
    result = cli("eval", tmp_path / "run", "--split", "valid", "--json", "--quiet")
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert np.isfinite(metrics["loss"]) and metrics["group_purity@5"] >= 0.9
    # The optimizer counted every step (the learning-rate schedule runs on its count).
    weights = final_weights(tmp_path / "run")
    iterations = [value for name, value in weights.items() if "iteration" in name]
    assert iterations == [json.loads((tmp_path / "run" / "run.json").read_text())["step"]]


def test_settings_that_need_gradients_choose_the_graph_kernel(tmp_path, cli, write_config):
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    adam = {**TINY["train"], "optimizer": {"name": "adam", "learning_rate": 0.01}}
    assert in_place(Trainer(config_from_dict(TINY), tmp_path / "a"))  # auto: fused
    assert not in_place(Trainer(config_from_dict({**TINY, "train": adam}), tmp_path / "b"))
    nce = {**TINY, "model": {**TINY["model"], "loss": "nce"}}
    assert not in_place(Trainer(config_from_dict(nce), tmp_path / "c"))
    fused = {**TINY, "model": {**TINY["model"], "kernel": "fused"}}
    clipped = {**fused, "train": {**adam, "clip_grad_norm": 1.0}}
    result = cli("fit", write_config(clipped), "--run-dir", tmp_path / "d", expect=2)
    assert "train.optimizer.name=adam" in result.stderr
    assert "train.clip_grad_norm" in result.stderr and "model.kernel: graph" in result.stderr


def test_without_a_compiler_auto_falls_back_and_fused_says_why(tmp_path, write_config):
    env = {**os.environ, "CXX": "no-such-compiler", "TFTRAIN_OPS_CACHE": str(tmp_path / "ops")}
    tiny = {**TINY, "train": {**TINY["train"], "epochs": 1}}
    auto = subprocess.run(
        fit_command(write_config(tiny), tmp_path / "auto"),
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert auto.returncode == 0, auto.stderr
    assert "compiling the word2vec op" in auto.stderr  # the first-use pause is announced
    assert "falls back to the slower graph kernel" in auto.stderr
    assert "no-such-compiler" in auto.stderr
    assert not list((tmp_path / "ops").iterdir())  # the failed build left no files
    fused = {**tiny, "model": {**TINY["model"], "kernel": "fused"}}
    failed = subprocess.run(
        fit_command(write_config(fused, "fused.yaml"), tmp_path / "fused"),
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 1
    assert "model.kernel: fused is unavailable here" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_deterministic_fused_runs_resume_to_identical_vectors(tmp_path, write_config):
    """train.deterministic runs the kernel on one thread: a run killed (SIGKILL) after its
    checkpoint at step 40 and resumed ends with exactly the vectors of an uninterrupted run."""
    tree = {
        **TINY,
        "train": {**TINY["train"], "epochs": 2, "deterministic": True, "steps_per_loop": 10},
        "checkpoint": {"every_steps": 10},
    }
    config = write_config(tree)
    straight = subprocess.run(
        fit_command(config, tmp_path / "straight"), cwd=PROJECT, capture_output=True, timeout=300
    )
    assert straight.returncode == 0, straight.stderr
    run = tmp_path / "killed"
    process = subprocess.Popen(fit_command(config, run), cwd=PROJECT, stderr=subprocess.PIPE)
    deadline = time.time() + 200
    while time.time() < deadline and not (run / "checkpoints" / "ckpt-40.index").exists():
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL
    total = json.loads((tmp_path / "straight" / "run.json").read_text())["step"]
    kept = max(int(p.stem[5:]) for p in (run / "checkpoints").glob("ckpt-*.index"))
    assert 40 <= kept < total  # killed mid-run
    resumed = subprocess.run(
        fit_command(config, run), cwd=PROJECT, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    expected, got = final_weights(tmp_path / "straight"), final_weights(run)
    assert any("input_vectors" in name for name in expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def in_place(trainer) -> bool:
    """Whether the trainer's step is the model's own in-place update."""
    from tftrain.runners.step import InPlaceStep

    return isinstance(trainer.loop.step, InPlaceStep)
