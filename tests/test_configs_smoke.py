"""`tftrain fit CONFIG --smoke` on every shipped config: the whole life cycle in seconds."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT
from tftrain.config import load_config
from tftrain.errors import ConfigError

CONFIGS = sorted((PROJECT / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 6


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_smoke(cli, path, tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT)  # configs name data paths relative to the project root
    config = load_config(path)
    try:
        from tftrain.registry import build_dataset

        build_dataset(config).spec()
    except ConfigError as error:
        if "not found" in str(error):
            pytest.skip(f"data for {path.name} is not on this machine: {error}")
        raise
    result = cli("fit", path, "--smoke", "--quiet", "--run-dir", tmp_path / "run")
    stages = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("smoke:")]
    assert stages == ["fit", "resume", "eval", "export"], result.stdout
