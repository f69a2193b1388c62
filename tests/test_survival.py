"""Runs that survive: damaged checkpoints, continuous evaluation, TFLite and frozen-graph exports."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import PROJECT, read_scalars

SOFTMAX = (
    "name: s\nmodel: {type: softmax, hidden_units: [16]}\ndata: {type: digits}\n"
    "train: {batch_size: 64, epochs: 3, steps_per_loop: 4,"
    " optimizer: {name: adam, learning_rate: 0.01}}\n"
)
LINEAR = (
    "name: l\nmodel: {type: linear}\ndata: {type: diabetes}\n"
    "train: {batch_size: 32, epochs: 4, optimizer: {name: adam, learning_rate: 0.5}}\n"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from click.testing import CliRunner

    from tftrain.cli import cli

    base = tmp_path_factory.mktemp("survival")
    made = {}
    for name, text in {"softmax": SOFTMAX, "linear": LINEAR}.items():
        (base / f"{name}.yaml").write_text(text)
        result = CliRunner().invoke(
            cli, ["fit", str(base / f"{name}.yaml"), "--run-dir", str(base / name), "--quiet"]
        )
        assert result.exit_code == 0, result.output
        made[name] = base / name
    return made


@pytest.mark.parametrize("model", ["softmax", "linear"])
@pytest.mark.parametrize("format_name", ["tflite", "frozen_graph"])
def test_tflite_and_frozen_graph_reproduce_the_model(cli, runs, tmp_path, model, format_name):
    from tftrain.registry import build_dataset
    from tftrain.runners.export import run_frozen_graph, run_tflite
    from tftrain.runners.restore import restore_run
    from tftrain.runners.rundir import RunDir

    out = tmp_path / format_name
    result = cli("export", runs[model], "--format", format_name, "--out", out)
    assert "max abs difference" in result.stdout
    # Run the artefact ourselves on examples the export check did not see.
    config = RunDir(runs[model]).load_config()
    x = build_dataset(config).arrays("valid")[0][:9].astype(np.float32)
    live = restore_run(runs[model]).model
    expected = {k: np.asarray(v) for k, v in live.serve(x).items()}
    if format_name == "tflite":
        got = run_tflite(out / "model.tflite", {"features": x})
    else:
        assert not (out / "variables").exists()  # one self-contained GraphDef
        got = run_frozen_graph(out, {"features": x})
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(got[key]), value, atol=1e-4, rtol=1e-4)
    again = cli("export", runs[model], "--check", out)
    assert f"checked {format_name} export" in again.stdout


def test_export_check_fails_loudly_when_the_artefact_differs(cli, runs, tmp_path):
    out = tmp_path / "saved"
    cli("export", runs["softmax"], "--out", out)
    # Compare the export against a different (earlier) checkpoint of the same run.
    earliest = sorted(
        (runs["softmax"] / "checkpoints").glob("ckpt-*.index"), key=lambda p: int(p.stem[5:])
    )[0]
    info = json.loads((out / "tftrain_export.json").read_text())
    info["checkpoint"] = str(earliest.with_suffix(""))
    (out / "tftrain_export.json").write_text(json.dumps(info))
    result = cli("export", runs["softmax"], "--check", out, expect=1)
    assert (
        "export check failed" in result.stderr and "differs from the trained model" in result.stderr
    )


def test_damaged_newest_checkpoint_falls_back_to_the_previous(cli, runs, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(runs["softmax"], run)
    newest = max((run / "checkpoints").glob("ckpt-*.index"), key=lambda p: int(p.stem[5:]))
    data = next(newest.parent.glob(newest.stem + ".data-*"))
    data.write_bytes(data.read_bytes()[:50])  # truncated by a crash mid-write
    newest_step = int(newest.stem[5:])
    files_before = {p.name for p in (run / "checkpoints").iterdir()}
    config = tmp_path / "c.yaml"
    config.write_text(SOFTMAX)
    # Extending training by one epoch resumes from the previous, readable checkpoint.
    result = cli("fit", config, "--run-dir", run, "--set", "train.epochs=4")
    assert f"checkpoint {newest.with_suffix('')} is damaged" in result.stderr
    assert data.name in result.stderr
    previous_step = newest_step - newest_step // 3
    assert f"resuming from {run}/checkpoints/ckpt-{previous_step}" in result.stderr
    # Nothing was deleted except by the normal keep-the-latest-N rotation.
    files_after = {p.name for p in (run / "checkpoints").iterdir()}
    assert {f"ckpt-{newest_step}.index"} <= files_after
    assert len(files_before - files_after) <= 2


def test_eval_watch_scores_checkpoints_written_while_it_runs(write_config, tmp_path):
    path = write_config(
        SOFTMAX.replace("epochs: 3", "epochs: 6").replace("steps_per_loop: 4", "steps_per_loop: 1")
    )
    run = tmp_path / "run"
    fit = subprocess.Popen(
        [sys.executable, "-m", "tftrain", "fit", str(path), "--run-dir", str(run), "--quiet"],
        cwd=PROJECT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run / "config.yaml").exists() and time.time() < deadline:
        time.sleep(0.1)
    watch = subprocess.run(
        [
            sys.executable,
            "-m",
            "tftrain",
            "eval",
            str(run),
            "--watch",
            "--split",
            "valid",
            "--json",
            "--timeout",
            "60",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    fit.communicate(timeout=300)
    assert fit.returncode == 0 and watch.returncode == 0, watch.stderr
    scored = [json.loads(line) for line in watch.stdout.splitlines()]
    steps = [r["step"] for r in scored]
    assert len(steps) >= 2 and steps == sorted(steps)
    steps_per_epoch = json.loads((run / "run.json").read_text())["steps_per_epoch"]
    assert steps[-1] == 6 * steps_per_epoch  # it saw the final checkpoint
    events = read_scalars(run / "logs" / "eval")
    assert [step for step, _ in events["accuracy"]] == steps
    assert events["accuracy"][-1][1] == pytest.approx(scored[-1]["accuracy"], rel=1e-6)
