"""Text classifiers end to end: a tiny two-class problem learned by the LSTM, predict on raw
strings, the SavedModel reloaded in a fresh process, eval's per-class figures, class weights."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

POSITIVE = ["great", "good", "excellent", "love", "wonderful", "happy", "best"]
NEGATIVE = ["bad", "awful", "terrible", "hate", "worst", "sad", "poor"]
FILLER = ["the", "movie", "was", "a", "and", "it", "i", "this", "film", "plot", "very"]


def write_reviews(path, count: int, seed: int, spam_share: float = 0.5) -> None:
    """label<TAB>text lines: two sentiment words hidden among filler words."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        label = "pos" if rng.random() < spam_share else "neg"
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 9))]
        for _ in range(2):
            words.insert(
                rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "pos" else NEGATIVE)
            )
        lines.append(f"{label}\t{' '.join(words).capitalize()}!\n")
    path.write_text("".join(lines))


def tftrain(*args, expect: int = 0):
    from tftrain.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == expect, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def text_config(path, **model):
    return {
        "name": "text",
        "seed": 3,
        "model": {
            "type": "lstm",
            "task": "classification",
            "num_layers": 1,
            "hidden_size": 16,
            "embedding_dim": 16,
            "bidirectional": True,
            **model,
        },
        "data": {"type": "text_classification", "path": str(path), "max_length": 16},
        "train": {
            "batch_size": 32,
            "epochs": 4,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "log_every_steps": 1000,
        },
        "summaries": {"enabled": False},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One BiLSTM trained on 320 tiny reviews, shared by the tests below."""
    folder = tmp_path_factory.mktemp("text")
    write_reviews(folder / "reviews.tsv", 320, seed=0)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(text_config(folder / "reviews.tsv")))
    tftrain("fit", config, "--quiet", "--run-dir", folder / "run")
    return folder / "run"


def test_lstm_learns_the_tiny_problem_and_predicts_raw_strings(trained, tmp_path):
    metrics = json.loads(tftrain("eval", trained, "--json").stdout)
    assert metrics["accuracy"] >= 0.95
    rows = [
        json.loads(line)
        for line in tftrain(
            "predict", trained, "--text", "What a wonderful, great film", "--format", "jsonl"
        ).stdout.splitlines()
    ]
    assert rows[0]["class_name"] == "pos" and rows[0]["probability"] > 0.8
    texts = tmp_path / "texts.txt"
    texts.write_text("I hate this awful movie\n\nThe best, I love it\n")
    result = tftrain("predict", trained, texts)
    lines = result.stdout.splitlines()
    assert lines[0] == "class_id,class_name,probability,text"
    assert [line.split(",")[1] for line in lines[1:]] == ["neg", "pos"]  # blank line skipped
    assert "I hate this awful movie" in lines[1]
    error = tftrain("predict", trained, expect=2)
    assert "give --text" in error.stderr


RELOAD = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
texts = json.loads(sys.argv[2])
out = loaded.signatures["serving_default"](text=tf.constant(texts))
print(json.dumps(out["probabilities"].numpy().tolist()))
"""


def test_saved_model_takes_strings_in_a_fresh_process(trained, tmp_path):
    result = tftrain("export", trained, "--force")
    assert "reloaded export matches" in result.stdout
    texts = ["Terrible, sad plot", "the BEST movie!!", "", "unknownword zzz"]
    fresh = subprocess.run(
        [sys.executable, "-c", RELOAD, str(trained / "export" / "saved_model"), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fresh.returncode == 0, fresh.stderr
    served = np.asarray(json.loads(fresh.stdout.splitlines()[-1]))
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(t for t in texts if t) + "\n")
    output = tftrain("predict", trained, lines, "--top-k", "2", "--format", "jsonl").stdout
    rows = [json.loads(line) for line in output.splitlines()]
    names = json.loads((trained / "data_spec.json").read_text())["class_names"]
    for row, probabilities in zip(rows, served[[0, 1, 3]], strict=True):
        for rank in (1, 2):
            picked = probabilities[names.index(row[f"class_name_{rank}"])]
            np.testing.assert_allclose(row[f"probability_{rank}"], picked, atol=1e-5)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)
    assert served[0].argmax() == names.index("neg") and served[1].argmax() == names.index("pos")


def test_eval_reports_per_class_figures_as_sklearn_computes_them(trained, tmp_path):
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    from tftrain.registry import build_dataset
    from tftrain.runners.restore import restore_run

    metrics = json.loads(tftrain("eval", trained, "--split", "valid", "--json").stdout)
    restored = restore_run(trained)
    dataset = build_dataset(restored.config)
    ids, truth = dataset.arrays("valid")
    logits, _ = restored.model.forward(ids.astype(np.float32), training=False)
    predicted = np.argmax(np.asarray(logits), axis=1)
    names = restored.model.spec.class_names
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=range(len(names)), zero_division=0
    )
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    for i, name in enumerate(names):
        row = metrics["per_class"][name]
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == support[i]
    assert metrics["confusion_matrix"] == confusion_matrix(truth, predicted).tolist()
    assert metrics["accuracy"] == pytest.approx(np.mean(truth == predicted), abs=1e-6)
    plot = tmp_path / "confusion.png"
    text = tftrain("eval", trained, "--split", "valid", "--plot", plot).stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "confusion matrix (rows: true class, columns: predicted)" in text
    matrix_rows = text.split("columns: predicted)\n")[1].splitlines()[1:]
    assert [[int(v) for v in line.split()[1:]] for line in matrix_rows] == metrics[
        "confusion_matrix"
    ]


def test_balanced_class_weights_scale_the_loss(tmp_path):
    from tftrain.models.base import classification_metrics

    labels = np.array([0, 0, 0, 1])
    logits = np.array([[2.0, 0.0], [1.0, 0.5], [0.0, 1.0], [0.3, 0.2]], np.float32)
    plain = classification_metrics(labels, logits)
    weighted = classification_metrics(labels, logits, class_weights=[4 / 6, 4 / 2])
    losses = -np.log(np.exp(logits[np.arange(4), labels]) / np.exp(logits).sum(axis=1))
    weights = np.array([4 / 6, 4 / 6, 4 / 6, 2.0])
    assert float(plain["loss"][0]) == pytest.approx(losses.sum(), rel=1e-5)
    assert float(weighted["loss"][0]) == pytest.approx((losses * weights).sum(), rel=1e-5)
    assert float(weighted["accuracy"][0]) == float(plain["accuracy"][0])


def fit_and_restore(folder, config: dict):
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = tftrain("fit", path, "--run-dir", folder / "run")
    from tftrain.runners.restore import restore_run

    return result, restore_run(folder / "run").model


def test_kim_cnn_learns_the_tiny_problem_and_serves_strings(tmp_path):
    write_reviews(tmp_path / "reviews.tsv", 320, seed=1)
    config = text_config(tmp_path / "reviews.tsv")
    config["model"] = {"type": "cnn", "preset": "kim2014", "num_filters": 8, "embedding_dim": 12}
    config["train"]["epochs"] = 3
    _, model = fit_and_restore(tmp_path, config)
    layers = {layer.name: layer for layer in model.network.layers}
    for width in (3, 4, 5):  # parallel convolutions over the embeddings, max over time
        assert tuple(layers[f"conv_{width}"].kernel.shape) == (width, 12, 8)
        assert f"max_over_time_{width}" in layers
    metrics = json.loads(tftrain("eval", tmp_path / "run", "--json").stdout)
    assert metrics["accuracy"] >= 0.95 and metrics["macro_f1"] >= 0.95
    output = tftrain("predict", tmp_path / "run", "--text", "awful, terrible plot").stdout
    assert output.splitlines()[1].split(",")[1] == "neg"
    assert "reloaded export matches" in tftrain("export", tmp_path / "run").stdout


def test_embeddings_from_a_vectors_file_are_found_and_stay_frozen(tmp_path):
    write_reviews(tmp_path / "reviews.tsv", 120, seed=2)
    rng = np.random.default_rng(0)
    words = ["Great", "bad", "movie", "notinthetexts"]  # "Great" matches "great" lower-cased
    vectors = rng.normal(size=(4, 6)).astype(np.float32)
    lines = [f"{len(words)} 6"] + [
        f"{w} {' '.join(f'{v:.6f}' for v in row)}" for w, row in zip(words, vectors, strict=True)
    ]
    (tmp_path / "vectors.txt").write_text("\n".join(lines) + "\n")
    config = text_config(tmp_path / "reviews.tsv")
    config["model"].pop("embedding_dim")
    config["model"]["embeddings"] = {"from": str(tmp_path / "vectors.txt"), "trainable": False}
    config["train"]["epochs"] = 1
    result, model = fit_and_restore(tmp_path, config)
    vocabulary = model.spec.vocabulary
    expected = f"embeddings: 3 of {len(vocabulary) - 2} vocabulary words found"
    assert expected in result.stderr + result.stdout
    matrix = model.network.get_layer("embedding").embeddings.numpy()
    assert matrix.shape == (len(vocabulary), 6)  # the width of the vectors
    for word, row in (("great", 0), ("bad", 1), ("movie", 2)):
        np.testing.assert_allclose(matrix[vocabulary.index(word)], vectors[row], atol=1e-6)
    np.testing.assert_array_equal(matrix[0], 0.0)  # padding
    config["model"]["embedding_dim"] = 8
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    error = tftrain("fit", tmp_path / "config.yaml", "--run-dir", tmp_path / "other", expect=2)
    assert "vectors in" in error.stderr and "have 6" in error.stderr


def test_embeddings_from_a_word2vec_run(tmp_path):
    w2v = {
        "name": "w2v",
        "seed": 0,
        "model": {"type": "word2vec", "embedding_size": 10, "kernel": "graph"},
        "data": {"type": "grouped_words", "groups": 2, "words_per_group": 4, "sentences": 200},
        "train": {
            "batch_size": 64,
            "epochs": 1,
            "optimizer": {"name": "sgd", "learning_rate": 0.025},
        },
        "summaries": {"enabled": False},
    }
    (tmp_path / "w2v.yaml").write_text(yaml.safe_dump(w2v))
    tftrain("fit", tmp_path / "w2v.yaml", "--quiet", "--run-dir", tmp_path / "w2v")
    from tftrain.runners.restore import restore_run

    source = restore_run(tmp_path / "w2v").model
    known = [w for w in source.spec.vocabulary if w[-1].isdigit()][:4]
    rng = random.Random(0)
    lines = [f"{i % 2}\t{rng.choice(known)} {known[i % 2]} unknownword\n" for i in range(60)]
    (tmp_path / "texts.tsv").write_text("".join(lines))
    config = text_config(tmp_path / "texts.tsv")
    config["model"].pop("embedding_dim")
    config["model"]["embeddings"] = {"from": str(tmp_path / "w2v"), "trainable": False}
    config["train"]["epochs"] = 1
    result, model = fit_and_restore(tmp_path, config)
    vocabulary = model.spec.vocabulary
    found = [w for w in vocabulary[2:] if w in source.spec.vocabulary]
    assert len(found) >= 2 and "unknownword" in vocabulary
    assert set(found) == set(known) - {w for w in known if w not in vocabulary}
    assert f"embeddings: {len(found)} of {len(vocabulary) - 2} vocabulary" in (
        result.stderr + result.stdout
    )
    matrix = model.network.get_layer("embedding").embeddings.numpy()
    for word in found:
        np.testing.assert_allclose(
            matrix[vocabulary.index(word)],
            source.vectors()[source.spec.vocabulary.index(word)],
            atol=1e-6,
        )


def test_models_cnn_describes_the_kim2014_text_network(cli):
    text = cli("models", "cnn", "--set", "preset=kim2014", "--set", "max_length=50").stdout
    assert "input [50], 10 classes" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:]}
    assert rows["conv_5"][1:] == ["Conv1D", "(46,", "100)", "64,100"]  # 5 x 128 x 100 + 100
    assert rows["embedding"][1:] == ["Embedding", "(50,", "128)", "2,560,000"]
