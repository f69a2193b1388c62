"""Per-class figures for every classifier: checked against scikit-learn, and on an image run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tftrain.runners.classification_report import (
    classification_report,
    confusion_matrix,
    report_lines,
)


def test_report_matches_sklearn_with_a_class_never_predicted_and_one_never_present():
    from sklearn import metrics

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 200)  # class 3 never occurs in the labels
    predicted = np.where(rng.random(200) < 0.7, truth, rng.integers(0, 4, 200))
    predicted[predicted == 2] = 3  # class 2 is never predicted
    matrix = confusion_matrix(truth, predicted, 4)
    report = classification_report(matrix, ["a", "b", "c", "d"])
    assert matrix.tolist() == metrics.confusion_matrix(truth, predicted, labels=range(4)).tolist()
    assert report["macro_f1"] == pytest.approx(
        metrics.f1_score(truth, predicted, average="macro", zero_division=0)
    )
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        truth, predicted, labels=range(4), zero_division=0
    )
    for i, name in enumerate("abcd"):
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx(
            (precision[i], recall[i], f1[i])
        )
        assert row["support"] == support[i]
    lines = report_lines(report)
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert lines[6].split() == ["a", "b", "c", "d"]  # the matrix header
    assert [int(v) for v in lines[7].split()[1:]] == matrix[0].tolist()


def test_an_image_classifier_reports_per_class_figures_and_draws_the_matrix(
    cli, write_config, tmp_path
):
    config = write_config(
        {
            "model": {"type": "softmax"},
            "data": {"type": "digits"},
            "train": {
                "batch_size": 64,
                "epochs": 2,
                "optimizer": {"name": "sgd", "learning_rate": 0.5},
            },
            "summaries": {"enabled": False},
        }
    )
    cli("fit", config, "--quiet", "--run-dir", tmp_path / "run")
    metrics = json.loads(cli("eval", tmp_path / "run", "--json").stdout)
    matrix = np.asarray(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == sum(row["support"] for row in metrics["per_class"].values())
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert metrics["accuracy"] > 0.8 and 0.7 < metrics["macro_f1"] <= 1
    plot = tmp_path / "digits.png"
    text = cli("eval", tmp_path / "run", "--plot", plot).stdout
    assert plot.stat().st_size > 1000 and "confusion matrix (rows: true class" in text
    refused = cli("predict", tmp_path / "run", "--text", "a digit?", expect=2)
    assert "--text is" in refused.stderr
