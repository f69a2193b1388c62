"""Shipped configs: a bare name finds one, `tftrain configs` lists them with their summary line
(tests/test_config.py checks that line), and one whose data is absent names the key to set
before TensorFlow loads."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.conftest import PROJECT
from tftrain.shipped_configs import CONFIG_DIR, shipped_configs

CONFIGS = sorted((PROJECT / "configs").glob("*.yaml"))


def test_the_package_configs_are_the_repository_configs():
    assert [p.name for p in CONFIGS] == [p.name for p in shipped_configs().values()]
    assert CONFIG_DIR.samefile(PROJECT / "configs")


def test_configs_lists_every_config_with_its_summary(cli):
    lines = cli("configs").stdout.splitlines()
    assert len(lines) == len(CONFIGS)
    for line, path in zip(lines, CONFIGS, strict=True):
        name, summary = line.split(maxsplit=1)
        assert name == path.stem
        assert summary == path.read_text(encoding="utf-8").splitlines()[0][2:].strip()


def test_configs_name_prints_the_file_to_copy(cli):
    text = cli("configs", "lstm_sine").stdout
    assert text == (PROJECT / "configs" / "lstm_sine.yaml").read_text(encoding="utf-8")
    result = cli("configs", "lstm_sin", expect=2)
    assert "no shipped config named 'lstm_sin'; did you mean 'lstm_sine'?" in result.stderr


def test_a_bare_name_is_the_shipped_config(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_path = cli("config", "show", PROJECT / "configs" / "mlp_mnist.yaml").stdout
    assert cli("config", "show", "mlp_mnist").stdout == by_path
    assert cli("config", "show", "mlp_mnist.yaml").stdout == by_path
    assert yaml.safe_load(by_path)["name"] == "mlp_mnist"


def test_a_real_file_wins_over_a_shipped_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.yaml").write_text(
        "name: mine\nmodel: {type: softmax}\ndata: {type: digits}\n"
    )
    assert yaml.safe_load(cli("config", "show", "quickstart.yaml").stdout)["name"] == "mine"
    assert yaml.safe_load(cli("config", "show", "quickstart").stdout)["name"] == "quickstart"


def test_an_unknown_name_suggests_the_nearest(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("config", "validate", "quikstart", expect=2)
    assert "config file not found: quikstart" in result.stderr
    assert "did you mean the shipped config 'quickstart'?" in result.stderr
    assert "tftrain configs" in result.stderr


def test_absent_data_names_the_key_before_tensorflow_loads(tmp_path):
    # From an empty folder the shipped MNIST config's relative data path leads nowhere.
    code = (
        "import sys\n"
        "from tftrain.cli import cli\n"
        "cli(['configs'], standalone_mode=False)\n"
        "code = cli(['fit', 'softmax_mnist', '--smoke'], standalone_mode=False)\n"
        "print(code, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT)},
    )
    assert "quickstart" in result.stdout  # `tftrain configs`, without TensorFlow either
    assert result.stdout.split()[-2:] == ["2", "False"], result.stdout + result.stderr
    assert "data file not found: ../shared/data/mnist (from 'data.path')" in result.stderr
    assert "--set data.path=" in result.stderr
    assert "Traceback" not in result.stderr
