"""The wheel on its own: built offline, installed without the source tree, run from an empty
folder. It must carry the configs and the licence, and train the quickstart config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.conftest import PROJECT

# TensorFlow's C++ start-up lines, which a plain run must not print.
TF_CHATTER = ("All log messages before absl::InitializeLog()", "oneDNN custom operations")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A copy of the tree to build from, so no build/ or egg-info lands in the checkout."""
    copy = tmp_path_factory.mktemp("build") / "source"
    ignored = shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__", "dist")
    shutil.copytree(PROJECT, copy, ignore=ignored, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def wheel(source):
    dist = source.parent / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Deprecat" not in result.stdout + result.stderr, "setuptools warns at build time"
    (path,) = dist.glob("tftrain-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """`pip install --target`: the package alone; the venv still provides its dependencies."""
    target = tmp_path_factory.mktemp("target")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        + ["--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    return target


def installed_env(target) -> dict:
    # No TF_CPP_MIN_LOG_LEVEL and no source tree: what a user gets from a plain install.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    return {**env, "PYTHONPATH": str(target)}


def run_installed(target, cwd, *args, timeout=600):
    command = [sys.executable, str(target / "bin" / "tftrain"), *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=installed_env(target)
    )


def test_the_wheel_holds_every_config_and_the_licence(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(p.name for p in (PROJECT / "configs").glob("*.yaml"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("tftrain/configs/")) == configs
    licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    assert "Apache License" in zipfile.ZipFile(wheel).read(licence).decode()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    assert "License-Expression: Apache-2.0" in metadata.decode()


def test_the_sdist_holds_every_config_and_the_licence(source):
    code = "from setuptools import build_meta; print(build_meta.build_sdist('sdist'))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=source, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Deprecat" not in result.stderr, "setuptools warns at build time"
    with tarfile.open(source / "sdist" / result.stdout.split()[-1]) as archive:
        names = archive.getnames()
    configs = sorted(p.name for p in (PROJECT / "configs").glob("*.yaml"))
    shipped = sorted(n.split("/")[-1] for n in names if "/tftrain/configs/" in n)
    assert shipped == configs
    assert any(n.count("/") == 1 and n.endswith("/LICENSE") for n in names)


def test_installed_wheel_trains_quickstart_from_an_empty_folder(installed, tmp_path):
    code = "import tftrain; print(tftrain.__file__)"
    imported = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=installed_env(installed),
        check=True,
    ).stdout.strip()
    assert imported.startswith(str(installed)), f"imported {imported}, not the installed wheel"

    listed = run_installed(installed, tmp_path, "configs")
    assert listed.returncode == 0, listed.stderr
    assert "quickstart" in [line.split()[0] for line in listed.stdout.splitlines()]

    run = tmp_path / "runs" / "quickstart"
    result = run_installed(installed, tmp_path, "fit", "quickstart", "--smoke", "--run-dir", run)
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("smoke:")]
    assert stages == ["fit", "resume", "eval", "export"], result.stdout
    for name in ("run.json", "config.yaml", "metrics.jsonl", "data_spec.json"):
        assert (run / name).is_file(), name
    assert list((run / "checkpoints").glob("ckpt-5.index"))
    assert (run / "export" / "saved_model" / "saved_model.pb").is_file()
    for chatter in TF_CHATTER:  # a plain run with no environment set is quiet
        assert chatter not in result.stderr
