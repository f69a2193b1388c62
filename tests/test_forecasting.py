"""Forecasting a CSV series end to end: train, eval beside the baselines, predict, export."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

ROWS, WINDOW, HORIZON, SEASON = 300, 12, 3, 25

RELOAD = """
import json, sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
x = np.load(sys.argv[2]).astype("float32")
print(json.dumps(np.asarray(serve(features=tf.constant(x))["predictions"]).tolist()))
"""


def series_values() -> np.ndarray:
    t = np.arange(ROWS)
    noise = np.random.default_rng(7).normal(0, 0.3, ROWS)
    return np.round(10 + 4 * np.sin(2 * np.pi * t / SEASON) + noise, 3)


def write_series(path, values, dates=None):
    dates = dates if dates is not None else np.datetime64("2000-01-01") + np.arange(len(values))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Date", "level"])
        writer.writerows(zip([str(d) for d in dates], values, strict=True))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An LSTM trained once on a noisy 25-day cycle: (run dir, csv path, values)."""
    from click.testing import CliRunner

    from tftrain.cli import cli

    base = tmp_path_factory.mktemp("forecast")
    values = series_values()
    path = write_series(base / "level.csv", values)
    config = base / "config.yaml"
    config.write_text(
        "model: {type: lstm, task: regression, num_layers: 1, hidden_size: 16}\n"
        f"data: {{type: series_csv, path: {path}, window: {WINDOW}, horizon: {HORIZON},"
        f" season: {SEASON}}}\n"
        "train: {batch_size: 16, epochs: 8, optimizer: {name: adam, learning_rate: 0.01}}\n"
        "summaries: {enabled: false}\n"
    )
    result = CliRunner().invoke(
        cli, ["fit", str(config), "--run-dir", str(base / "run"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return base / "run", path, values


def naive_scores(values: np.ndarray) -> dict:
    """The baselines on the test windows, computed here from the rows with plain loops."""
    test_start, valid_start = ROWS - round(ROWS * 0.2), ROWS - round(ROWS * 0.3)

    def window_ends(start, stop):
        return range(start + WINDOW - 1, stop - HORIZON)

    def inputs(end):
        return np.r_[values[end - WINDOW + 1 : end + 1], 1.0]

    def future(end):
        return values[end + 1 : end + 1 + HORIZON]

    train = list(window_ends(0, valid_start))
    weights = np.linalg.lstsq(
        np.array([inputs(e) for e in train]), np.array([future(e) for e in train]), rcond=None
    )[0]
    ends = list(window_ends(test_start, ROWS))
    truth = np.array([future(e) for e in ends])
    guesses = {
        "persistence": np.array([[values[e]] * HORIZON for e in ends]),
        "seasonal_naive": np.array([[values[e + h - SEASON] for h in (1, 2, 3)] for e in ends]),
        "linear": np.array([inputs(e) @ weights for e in ends]),
    }
    result = {}
    for name, guess in guesses.items():
        result[f"{name}_rmse"] = np.sqrt(np.mean((guess - truth) ** 2))
        result[f"{name}_mae"] = np.mean(np.abs(guess - truth))
    return result


def test_lstm_beats_persistence_and_baselines_match_numpy(trained, cli, tmp_path):
    run, _, values = trained
    plot = tmp_path / "forecast.png"
    report = json.loads(cli("eval", run, "--json", "--plot", plot).stdout)
    assert report["rmse"] < 0.8 * report["persistence_rmse"], report
    assert report["mae"] < report["persistence_mae"], report
    np.testing.assert_allclose(report["rmse"] ** 2, report["mse"], rtol=1e-4)
    expected = naive_scores(values)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-6), key
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_forecasts_after_the_end_and_matches_a_reloaded_export(trained, cli, tmp_path):
    run, path, values = trained
    lines = cli("predict", run, path).stdout.splitlines()
    assert lines[0] == "step,Date,level"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[:2] for r in rows] == [["1", "2000-10-27"], ["2", "2000-10-28"], ["3", "2000-10-29"]]
    forecast = np.array([float(r[2]) for r in rows])
    # The cycle's next values are known without noise; the forecast should be close to them.
    clean = 10 + 4 * np.sin(2 * np.pi * np.arange(ROWS, ROWS + HORIZON) / SEASON)
    assert np.abs(forecast - clean).max() < 1.5, (forecast, clean)

    assert "reloaded export matches" in cli("export", run, "--force").stdout
    np.save(tmp_path / "window.npy", values[None, -WINDOW:, None].astype(np.float32))
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            RELOAD,
            str(run / "export" / "saved_model"),
            tmp_path / "window.npy",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fresh.returncode == 0, fresh.stderr
    np.testing.assert_allclose(json.loads(fresh.stdout.splitlines()[-1])[0], forecast, atol=1e-5)


def test_predict_without_a_regular_time_step_gives_steps_only(trained, cli, tmp_path):
    run, _, values = trained
    dates = np.datetime64("2000-01-01") + np.arange(40)
    dates[-3:] += 1  # a day missing near the end: the step is not regular
    path = write_series(tmp_path / "gap.csv", values[:40], dates)
    rows = [
        json.loads(line)
        for line in cli("predict", run, path, "--format", "jsonl").stdout.splitlines()
    ]
    assert [sorted(r) for r in rows] == [["level", "step"]] * HORIZON
    short = write_series(tmp_path / "short.csv", values[:5])
    result = cli("predict", run, short, expect=1)
    assert "5 rows; the model needs the last 12" in result.stderr
