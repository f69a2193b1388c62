"""Shared test helpers: run the CLI in-process, write configs, read TensorBoard events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PROJECT = Path(__file__).resolve().parents[1]
# Custom ops (tftrain/ops) are compiled once per checkout, shared by the test workers.
os.environ.setdefault("TFTRAIN_OPS_CACHE", str(PROJECT / ".pytest_cache" / "tftrain-ops"))
SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.fixture
def cli():
    """Call `tftrain ARGS...` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from tftrain.cli import cli as command

    def run(*args, expect: int | None = 0):
        result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
        if expect is not None and result.exit_code != expect:
            raise AssertionError(
                f"tftrain {' '.join(map(str, args))} exited {result.exit_code}, expected {expect}"
                f"\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def write_config(tmp_path):
    """Write a config (a dict or YAML text) to a file in tmp_path; returns its path."""

    def write(content, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    return write


def run_tftrain(*args, timeout=300, env=None, cwd=None) -> subprocess.CompletedProcess:
    """`python -m tftrain ARGS` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "tftrain", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd or PROJECT,
    )


def read_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """Scalars from TensorBoard event files, read with TensorBoard's own reader."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    series = {}
    for tag in accumulator.Tags()["tensors"]:
        series[tag] = [
            (event.step, float(tf.make_ndarray(event.tensor_proto)))
            for event in accumulator.Tensors(tag)
        ]
    for tag in accumulator.Tags()["scalars"]:
        series[tag] = [(event.step, event.value) for event in accumulator.Scalars(tag)]
    return series


@pytest.fixture(autouse=True)
def cluster_environment():
    """TF_CONFIG and SLURM_* as they were before each test (`fit --cluster` sets TF_CONFIG)."""
    saved = {k: v for k, v in os.environ.items() if k == "TF_CONFIG" or k.startswith("SLURM_")}
    yield
    for key in [k for k in os.environ if k == "TF_CONFIG" or k.startswith("SLURM_")]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)
