"""Config loading: includes, overrides, defaults, and located errors with suggestions."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import yaml

from tests.conftest import PROJECT, run_tftrain
from tftrain.config import load_config
from tftrain.errors import ConfigError

BASE = {
    "name": "t",
    "model": {"type": "softmax"},
    "data": {"type": "digits"},
    "train": {"batch_size": 16, "epochs": 1},
}


def error_of(path, overrides=()) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(path, overrides)
    return str(raised.value)


def test_defaults_overrides_and_types(write_config):
    path = write_config(BASE)
    config = load_config(path, ["train.optimizer.learning_rate=0.25", "model.hidden_units=[8, 4]"])
    assert config.train.optimizer.learning_rate == 0.25
    assert config.model.hidden_units == (8, 4)
    assert config.train.batch_size == 16
    assert config.checkpoint.max_to_keep == 3  # a default
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.batch_size = 3


def test_include_merges_with_later_winning(write_config):
    write_config({"train": {"batch_size": 64, "epochs": 7}, "seed": 5}, name="base.yaml")
    path = write_config({**BASE, "include": "base.yaml", "train": {"batch_size": 8}})
    config = load_config(path)
    assert config.train.batch_size == 8  # the including file wins
    assert config.train.epochs == 7  # the include fills what the file leaves out
    assert config.seed == 5


def test_include_cycle_is_reported(write_config):
    write_config({"include": "b.yaml"}, name="a.yaml")
    path = write_config({"include": "a.yaml"}, name="b.yaml")
    assert "include cycle" in error_of(path)


def test_unknown_key_names_key_file_line_and_suggestion(write_config):
    path = write_config(
        "name: t\nmodel:\n  type: softmax\ndata:\n  type: digits\ntrain:\n"
        "  optimizer:\n    learnin_rate: 0.1\n"
    )
    message = error_of(path)
    assert "train.optimizer.learnin_rate" in message
    assert f"{path}, line 8" in message
    assert "did you mean 'train.optimizer.learning_rate'" in message


def test_wrong_type_names_value_and_line(write_config):
    path = write_config("model: {type: softmax}\ndata: {type: digits}\ntrain:\n  epochs: many\n")
    message = error_of(path)
    assert "'train.epochs' must be an integer, got 'many'" in message
    assert "line 4" in message


def test_out_of_range_value(write_config):
    path = write_config({**BASE, "train": {"batch_size": -4}})
    message = error_of(path)
    assert "'train.batch_size' must be at least 1, got -4" in message


def test_unknown_model_type_suggests_nearest(write_config):
    path = write_config({**BASE, "model": {"type": "sofmax"}})
    message = error_of(path)
    assert "unknown model type 'model.type' 'sofmax'" in message
    assert "Did you mean 'softmax'?" in message
    assert "linear" in message  # lists the valid names


def test_model_specific_keys_are_checked(write_config):
    path = write_config({**BASE, "model": {"type": "softmax", "hiden_units": [3]}})
    assert "did you mean 'model.hidden_units'" in error_of(path)


def test_override_source_is_named(write_config):
    path = write_config(BASE)
    message = error_of(path, ["train.batch_size=0"])
    assert "--set train.batch_size=0" in message


def test_show_prints_every_default(cli, write_config):
    path = write_config(BASE)
    shown = yaml.safe_load(cli("config", "show", path, "--set", "seed=3").stdout)
    assert shown["seed"] == 3
    assert shown["train"]["optimizer"]["name"] == "sgd"
    assert shown["model"] == {
        "type": "softmax",
        "hidden_units": [],
        "activation": "relu",
        "dropout": 0.0,
        "kernel_initializer": "glorot_uniform",
    }
    assert set(shown) >= {"train", "eval", "checkpoint", "summaries", "device", "export"}
    # What `show` prints is itself a valid config that resolves to the same thing.
    again = write_config(shown, name="shown.yaml")
    assert load_config(again).to_dict() == load_config(path, ["seed=3"]).to_dict()


@pytest.mark.parametrize(
    "tree, expected",
    [
        ({**BASE, "trian": {}}, "did you mean 'train'"),
        ({**BASE, "train": {"batch_size": "x"}}, "'train.batch_size' must be an integer"),
        ({**BASE, "data": {"type": "digts"}}, "Did you mean 'digits'?"),
        ({**BASE, "train": {"batch_size": -1}}, "must be at least 1"),
        ({**BASE, "data": {"type": "csv", "path": "nowhere.csv"}}, "data file not found"),
    ],
)
def test_bad_configs_exit_2_without_traceback(cli, write_config, tmp_path, tree, expected):
    path = write_config(tree)
    result = cli("fit", path, "--run-dir", tmp_path / "run", "--quiet", expect=2)
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_missing_config_file_and_bad_yaml(cli, write_config, tmp_path):
    result = cli("config", "validate", tmp_path / "absent.yaml", expect=2)
    assert "config file not found" in result.stderr
    path = write_config("model: {type: softmax\n")
    result = cli("config", "validate", path, expect=2)
    assert "invalid YAML" in result.stderr and str(path) in result.stderr


def test_help_and_config_errors_do_not_import_tensorflow(write_config):
    path = write_config({**BASE, "train": {"batch_sise": 3}})
    code = (
        "import sys\n"
        "from tftrain.cli import cli\n"
        "for args in (['--help'], ['models'], ['config', 'validate', sys.argv[1]]):\n"
        "    try:\n"
        "        cli(args, standalone_mode=False)\n"
        "    except Exception as error:\n"
        "        print(type(error).__name__)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout + result.stderr
    assert "did you mean 'train.batch_size'" in result.stderr


def test_cli_exit_code_2_in_a_real_process(write_config):
    path = write_config({**BASE, "model": {"type": "softmax", "dropout": 2.0}})
    result = run_tftrain("config", "validate", path)
    assert result.returncode == 2
    assert "'model.dropout' must be less than 1, got 2.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_models_lists_names_with_descriptions(cli):
    lines = cli("models").stdout.splitlines()
    names = {line.split()[0] for line in lines}
    assert {"linear", "softmax"} <= names
    assert all(len(line.split()) > 2 for line in lines)


SHIPPED = sorted((PROJECT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_starts_with_a_one_line_summary(path):
    # `tftrain configs` shows this line; every new config in configs/ needs one.
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# "), f"{path.name}: line 1 must be a '# summary' comment"
    summary = first[2:].strip()
    assert 10 <= len(summary) <= 100, f"{path.name}: summary is {len(summary)} chars (max 100)"
    assert summary.endswith("."), f"{path.name}: the summary line must end with a period"
