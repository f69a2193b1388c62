"""Fault injection on real runs: damaged state files and checkpoints, hostile export targets,
smoke on a run, unwritable run folders, batches and CSVs that cannot work.

Every case asserts the exit code, that no traceback or internal error is printed, and that
nothing in the run directory was lost or changed (file hashes before and after)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

TINY = (
    "name: faults\nseed: 3\nmodel: {type: softmax, hidden_units: [16]}\ndata: {type: digits}\n"
    "train: {batch_size: 64, epochs: 2, steps_per_loop: 4, log_every_steps: 5,"
    " optimizer: {name: adam, learning_rate: 0.01}}\n"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished two-epoch run (checkpoints at steps 0, one epoch, two epochs)."""
    from click.testing import CliRunner

    from tftrain.cli import cli

    base = tmp_path_factory.mktemp("faults")
    (base / "tiny.yaml").write_text(TINY)
    result = CliRunner().invoke(
        cli, ["fit", str(base / "tiny.yaml"), "--run-dir", str(base / "run"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return base / "run"


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run, so each case may damage it."""
    shutil.copytree(trained, tmp_path / "run")
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path / "run"


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"  # the lock file records its last holder
    }


def steps(run: Path) -> list[int]:
    return sorted(int(p.stem[5:]) for p in (run / "checkpoints").glob("ckpt-*.index"))


def clean(result, code: int) -> str:
    """The command's whole output, once its exit code and the absence of tracebacks hold."""
    output = result.stdout + result.stderr
    assert result.exit_code == code, output
    assert "Traceback" not in output and "internal error" not in output, output
    return output


def truncate_newest(run: Path) -> Path:
    """Cut the newest checkpoint's index file short, as a crash mid-write would."""
    index = run / "checkpoints" / f"ckpt-{steps(run)[-1]}.index"
    index.write_bytes(index.read_bytes()[:40])
    return index


# --- 1. export --force replaces only an earlier export ------------------------------------


@pytest.mark.parametrize(
    "target",
    ["run", "run/checkpoints", "run/logs/train", "run/best", "run/config.yaml", "parent",
     "foreign", "file", "link_to_run"],
)  # fmt: skip
def test_export_force_refuses_anything_but_an_earlier_export(cli, run, tmp_path, target):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("years of work")
    (tmp_path / "file").write_text("not an export")
    (tmp_path / "link_to_run").symlink_to(run)
    out = {"parent": tmp_path}.get(target, tmp_path / target)
    before = hashes(tmp_path)
    result = cli("export", run, "--out", out, "--force", expect=None)
    assert f"will not export to {out}" in clean(result, 2)
    assert hashes(tmp_path) == before


def test_export_force_refuses_an_export_of_another_format(cli, run, tmp_path):
    out = tmp_path / "model"
    clean(cli("export", run, "--out", out, expect=None), 0)
    manifest = json.loads((out / "tftrain_export.json").read_text())
    assert manifest["format"] == "saved_model"
    before = hashes(out)
    result = cli("export", run, "--format", "tflite", "--out", out, "--force", expect=None)
    assert "holds a saved_model export, not tflite" in clean(result, 2)
    assert hashes(out) == before
    # The same format is replaced, and the run itself is untouched by either.
    run_before = hashes(run)
    clean(cli("export", run, "--out", out, "--force", expect=None), 0)
    assert (out / "saved_model.pb").exists() and hashes(run) == run_before


# --- 2. the checkpoint state file is an index, the files are the truth --------------------


@pytest.mark.parametrize("damage", ["missing", "empty", "dangling"])
def test_fit_resumes_from_the_newest_checkpoint_when_the_state_file_is_lost(cli, run, damage):
    state = run / "checkpoints" / "checkpoint"
    if damage == "missing":
        state.unlink()
    elif damage == "empty":
        state.write_text("")
    else:
        state.write_text('model_checkpoint_path: "ckpt-999"\n')
    kept = steps(run)
    before = hashes(run / "checkpoints")
    config = run.parent / "tiny.yaml"
    result = cli("fit", config, "--run-dir", run, "--set", "train.epochs=3", expect=None)
    output = clean(result, 0)
    assert f"warning: {state}" in output and "rewriting it from them" in output
    assert f"resuming from {run}/checkpoints/ckpt-{kept[-1]}: step {kept[-1]}" in output
    # It trained on from there (no step logged twice) and lost no intact checkpoint but
    # the oldest, rotated out by checkpoint.max_to_keep=3 as usual.
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained_steps = [r["step"] for r in records if r.get("split") == "train"]
    assert len(trained_steps) == len(set(trained_steps)) and max(trained_steps) > kept[-1]
    after = hashes(run / "checkpoints")
    for name in before:
        if name.startswith(tuple(f"ckpt-{s}." for s in kept[1:])):
            assert after[name] == before[name], name
    listed = state.read_text()
    assert f'model_checkpoint_path: "ckpt-{steps(run)[-1]}"' in listed
    assert all(f'"ckpt-{s}"' in listed for s in steps(run))


def test_fit_sets_a_damaged_newest_checkpoint_aside_and_never_deletes_it(cli, run):
    index = truncate_newest(run)
    damaged = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in
               index.parent.glob(index.stem + ".*")}  # fmt: skip
    config = run.parent / "tiny.yaml"
    result = cli("fit", config, "--run-dir", run, "--set", "train.epochs=3", expect=None)
    output = clean(result, 0)
    assert f"checkpoint {index.with_suffix('')} is damaged" in output
    assert f"{index.name} -> damaged-{index.name}" in output
    for name, digest in damaged.items():
        moved = run / "checkpoints" / f"damaged-{name}"
        assert hashlib.sha256(moved.read_bytes()).hexdigest() == digest
    assert "damaged" not in (run / "checkpoints" / "checkpoint").read_text()


@pytest.mark.parametrize("damage", ["truncated", "empty_state"])
@pytest.mark.parametrize("command", ["eval", "export", "predict"])
def test_eval_export_predict_fall_back_and_change_nothing(cli, run, tmp_path, damage, command):
    kept = steps(run)
    if damage == "truncated":
        index = truncate_newest(run)
        expected_step = kept[-2]
    else:
        (run / "checkpoints" / "checkpoint").write_text("")
        expected_step = kept[-1]
    features = tmp_path / "features.csv"
    features.write_text(",".join(["0"] * 64) + "\n" + ",".join(["8"] * 64) + "\n")
    before = hashes(run)
    args = {
        "eval": ["eval", run, "--json"],
        "export": ["export", run, "--out", tmp_path / "export"],
        "predict": ["predict", run, features],
    }[command]
    output = clean(cli(*args, expect=None), 0)
    assert hashes(run) == before
    if damage == "truncated":
        assert f"checkpoint {index.with_suffix('')} is damaged (" in output
        assert f"{index.name}: " in output  # the damaged files are named
    else:
        assert "is empty or unreadable" in output and "using them" in output
    if command == "eval":
        assert json.loads(result_line(output))["step"] == expected_step
    elif command == "export":
        info = json.loads((tmp_path / "export" / "tftrain_export.json").read_text())
        assert info["step"] == expected_step
    else:
        assert "class_id" in output and len(re.findall(r"^\d,", output, re.M)) == 2


def result_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("{"))


# --- 3. smoke never touches a run ---------------------------------------------------------


def test_smoke_refuses_an_existing_run(cli, run):
    before = hashes(run)
    result = cli("fit", run.parent / "tiny.yaml", "--smoke", "--run-dir", run, expect=None)
    assert "--smoke never touches an existing run" in clean(result, 2)
    assert hashes(run) == before


# --- 4. unwritable run folders: refused before training; later failures marked ------------


def test_an_unwritable_run_folder_is_refused_before_training(cli, run, tmp_path):
    # Tests may run as root, for whom chmod blocks nothing: a `checkpoints` that is a
    # regular file and a `logs` that is a dangling link fail for every user alike.
    config = run.parent / "tiny.yaml"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "checkpoints").write_text("")
    result = cli("fit", config, "--run-dir", fresh, expect=None)
    assert f"{fresh / 'checkpoints'} is not a folder; training did not start" in clean(result, 1)
    (run / "logs" / "valid").rename(tmp_path / "valid")
    (run / "logs" / "valid").symlink_to(tmp_path / "gone")
    before = hashes(run)
    result = cli("fit", config, "--run-dir", run, "--set", "train.epochs=3", expect=None)
    assert f"{run / 'logs' / 'valid'} is a dangling symbolic link" in clean(result, 1)
    assert hashes(run) == before and json.loads((run / "run.json").read_text())["status"] == (
        "finished"
    )
    if os.geteuid() != 0:  # where permissions bind, a read-only folder is refused the same way
        (run / "logs" / "valid").unlink()
        (run / "checkpoints").chmod(0o555)
        try:
            result = cli("fit", config, "--run-dir", run, "--set", "train.epochs=3", expect=None)
        finally:
            (run / "checkpoints").chmod(0o755)
        assert "cannot be written" in clean(result, 1)


def test_a_failure_after_training_started_marks_the_run_failed(cli, tmp_path):
    # best/best.json as a folder: writing the first best checkpoint's record fails mid-run.
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = tmp_path / "run"
    (run / "best" / "best.json").mkdir(parents=True)
    result = cli("fit", tmp_path / "tiny.yaml", "--run-dir", run, expect=None)
    assert "best.json" in clean(result, 1)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "best.json" in record["failure"], record


# --- 12, 14. data that cannot train is refused before the first step ----------------------


def test_a_batch_larger_than_the_training_split_names_both_numbers(cli, tmp_path):
    from tftrain.config import load_config
    from tftrain.registry import build_dataset

    (tmp_path / "tiny.yaml").write_text(TINY)
    count = build_dataset(load_config(tmp_path / "tiny.yaml")).num_examples("train")
    run = tmp_path / "big"
    result = cli(
        "fit", tmp_path / "tiny.yaml", "--run-dir", run, "--set", f"train.batch_size={count + 1}",
        expect=None,
    )  # fmt: skip
    output = clean(result, 2)
    assert f"train.batch_size={count + 1} is larger than the training split ({count} " in output
    assert not run.exists()


def test_csv_splits_with_different_columns_are_refused_before_training(cli, tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("a,b,c,label\n" + "".join(f"{i},{i % 3},{i % 5},{i % 2}\n" for i in range(40)))
    test.write_text("a,b,c,d,label\n" + "".join(f"{i},1,2,3,{i % 2}\n" for i in range(10)))
    config = tmp_path / "csv.yaml"
    config.write_text(
        f"name: csv\nmodel: {{type: softmax}}\n"
        f"data: {{type: csv, path: {train}, test_path: {test}}}\ntrain: {{batch_size: 8}}\n"
    )
    run = tmp_path / "csv_run"
    output = clean(cli("fit", config, "--run-dir", run, expect=None), 1)
    assert f"the test split (data.test_path: {test}) has examples of shape [4]" in output
    assert f"the train split (data.path: {train}) [3]" in output
    assert not run.exists()
