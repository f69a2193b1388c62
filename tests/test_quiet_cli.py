"""A plain `tftrain` run prints no TensorFlow C++ start-up lines; --debug or an explicit
TF_CPP_MIN_LOG_LEVEL brings them back. Real processes, since TensorFlow logs once per process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PROJECT

# absl's pre-initialisation notice and TensorFlow's C++ log lines ("I0000 00:00:... file.cc:12]").
CHATTER = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|^[IWE]\d{4} ", re.M
)


@pytest.mark.parametrize(
    "args, level, loud",
    [
        ([], None, False),
        (["--debug"], None, True),
        ([], "0", True),
    ],
    ids=["plain", "debug", "explicit-level"],
)
def test_tensorflow_start_up_lines_only_when_asked(args, level, loud, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(PROJECT)
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    result = subprocess.run(
        [sys.executable, "-m", "tftrain", *args, "devices"],  # `devices` starts TensorFlow
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "physical devices:" in result.stdout
    assert bool(CHATTER.search(result.stderr)) == loud, result.stderr
