"""Export a trained run, reload it in a fresh process with plain TensorFlow, predict from files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

RELOAD = """
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
serve = loaded.signatures["serving_default"]
x = np.load(sys.argv[2])["x"].astype("float32")
outputs = serve(features=tf.constant(x))
print(json.dumps({k: np.asarray(v).tolist() for k, v in outputs.items()}))
"""


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """A softmax run on digits and a linear run on diabetes, trained once for these tests."""
    from click.testing import CliRunner

    from tftrain.cli import cli

    base = tmp_path_factory.mktemp("runs")
    configs = {
        "softmax": "model: {type: softmax, hidden_units: [16]}\ndata: {type: digits}\n"
        "train: {batch_size: 64, epochs: 3, steps_per_loop: 5,"
        " optimizer: {name: adam, learning_rate: 0.01}, ema_decay: 0.9}\n",
        "linear": "model: {type: linear}\ndata: {type: diabetes}\n"
        "train: {batch_size: 32, epochs: 5, optimizer: {name: adam, learning_rate: 0.5}}\n",
    }
    runs = {}
    for name, text in configs.items():
        path = base / f"{name}.yaml"
        path.write_text(text)
        result = CliRunner().invoke(
            cli, ["fit", str(path), "--run-dir", str(base / name), "--quiet"]
        )
        assert result.exit_code == 0, result.output
        runs[name] = base / name
    return runs


@pytest.mark.parametrize("name", ["softmax", "linear"])
def test_saved_model_reloads_in_a_fresh_process_and_matches_predict(
    cli, trained_runs, tmp_path, name
):
    run = trained_runs[name]
    result = cli("export", run, "--force")
    assert "reloaded export matches" in result.stdout
    export_dir = run / "export" / "saved_model"
    info = json.loads((export_dir / "tftrain_export.json").read_text())
    assert info["signatures"] == ["serving_default"] and info["max_difference"] <= 1e-5

    from tftrain.registry import build_dataset
    from tftrain.runners.rundir import RunDir

    config = RunDir(run).load_config()
    raw = build_dataset(config).arrays("test")[0][:12].astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x=raw)
    fresh = subprocess.run(
        [sys.executable, "-c", RELOAD, str(export_dir), str(tmp_path / "inputs.npz")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert "tftrain" not in fresh.stderr
    served = json.loads(fresh.stdout.splitlines()[-1])
    rows = [
        json.loads(line)
        for line in cli(
            "predict", run, tmp_path / "inputs.npz", "--format", "jsonl"
        ).stdout.splitlines()
    ]
    assert len(rows) == 12
    if name == "softmax":
        assert [row["class_id"] for row in rows] == served["class_ids"]
        probabilities = np.asarray(served["probabilities"])
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        picked = probabilities[np.arange(12), served["class_ids"]]
        np.testing.assert_allclose([row["probability"] for row in rows], picked, atol=1e-5)
    else:
        np.testing.assert_allclose(
            [row["prediction"] for row in rows], np.ravel(served["predictions"]), rtol=1e-5
        )


def test_export_refuses_to_overwrite_without_force(cli, trained_runs, tmp_path):
    out = tmp_path / "model"
    cli("export", trained_runs["softmax"], "--out", out)
    marker = out / "saved_model.pb"
    assert marker.exists()
    result = cli("export", trained_runs["softmax"], "--out", out, expect=2)
    assert "already exists; pass --force" in result.stderr
    cli("export", trained_runs["softmax"], "--out", out, "--force")
    assert marker.exists()
    result = cli("export", trained_runs["softmax"], "--format", "onnx", expect=2)
    assert "unknown export format 'onnx'" in result.stderr


def test_predict_reads_csv_with_header_and_writes_csv(cli, trained_runs, tmp_path):
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    names = list(bunch.feature_names)
    # Columns in a different order plus an extra one: matched by the training feature names.
    header = ["extra", *reversed(names)]
    lines = [",".join(header)]
    for row in bunch.data[:5]:
        lines.append(",".join(["7", *(str(v) for v in reversed(row))]))
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    np.savez(tmp_path / "in.npz", x=bunch.data[:5])
    from_csv = cli("predict", trained_runs["linear"], tmp_path / "in.csv").stdout.splitlines()
    from_npz = cli("predict", trained_runs["linear"], tmp_path / "in.npz").stdout.splitlines()
    assert from_csv[0] == "prediction" and len(from_csv) == 6
    np.testing.assert_allclose(
        [float(v) for v in from_csv[1:]], [float(v) for v in from_npz[1:]], rtol=1e-5
    )
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((2, 3)))
    result = cli("predict", trained_runs["linear"], bad, expect=1)
    assert "each example needs 10 values" in result.stderr


def test_eval_on_best_and_named_checkpoints(cli, trained_runs):
    run = trained_runs["softmax"]
    best = json.loads(cli("eval", run, "--json", "--checkpoint", "best", "--split", "valid").stdout)
    assert "/best/" in best["checkpoint"]
    latest = json.loads(cli("eval", run, "--json").stdout)
    named = json.loads(cli("eval", run, "--json", "--checkpoint", latest["checkpoint"]).stdout)
    assert named["accuracy"] == latest["accuracy"]
    result = cli("eval", run.parent / "nothing", expect=2)
    assert "not a tftrain run directory" in result.stderr


def test_predict_takes_the_options_the_runs_model_declares(cli, trained_runs, tmp_path):
    run = trained_runs["softmax"]
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 64), np.float32))
    rows = cli("predict", run, tmp_path / "x.npz", "--top-k", "3").stdout.splitlines()
    header = rows[0].split(",")
    assert {"class_id_1", "class_id_3", "probability_3"} <= set(header)
    assert "class_id_4" not in header and len(rows) == 4
    # Another family's option is refused, naming the options this model has.
    result = cli("predict", run, tmp_path / "x.npz", "--beam-width", "4", expect=2)
    assert "--beam-width is not an option of a softmax model" in result.stderr
    assert "--top-k" in result.stderr


def test_predict_help_lists_every_familys_options(cli):
    text = cli("predict", "--help").stdout
    for flag in ("--top-k", "--prime", "--words", "--beam-width", "--nearest", "--analogy"):
        assert flag in text
    assert "[seq2seq]" in text and "[word2vec]" in text


def test_a_model_refuses_data_it_does_not_learn(cli, write_config, tmp_path):
    config = write_config({"model": {"type": "linear"}, "data": {"type": "digits"}})
    result = cli("fit", config, "--run-dir", tmp_path / "r", "--quiet", expect=2)
    message = result.stderr
    assert "model 'linear' learns regression data" in message
    assert "diabetes" in message and "but this dataset gives classification data" in message
    assert "models for classification data: cnn, lstm, softmax" in message
    assert not (tmp_path / "r" / "checkpoints").exists()
