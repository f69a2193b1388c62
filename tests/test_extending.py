"""docs/extending.md's example model and dataset, dropped into a copy of the package, train."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import PROJECT


def doc_blocks(language: str) -> list[str]:
    text = (PROJECT / "docs" / "extending.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_documented_model_and_dataset_train_as_single_files(tmp_path):
    model_code, dataset_code = doc_blocks("python")
    (config_text,) = doc_blocks("yaml")
    package = tmp_path / "tftrain"
    shutil.copytree(
        PROJECT / "tftrain", package, ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    (package / "models" / "quadratic.py").write_text(model_code)
    (package / "data" / "parabola.py").write_text(dataset_code)
    (tmp_path / "quadratic.yaml").write_text(config_text)

    def tftrain(*args):
        return subprocess.run(
            [sys.executable, "-m", "tftrain", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # the copy, not the project, is first on sys.path
        )

    listed = tftrain("models")
    assert re.search(r"^quadratic\s+quadratic regression", listed.stdout, flags=re.M)
    assert "parabola" in tftrain("datasets").stdout
    smoke = tftrain("fit", "quadratic.yaml", "--smoke")
    assert smoke.returncode == 0, smoke.stderr
    assert "smoke: resume ok" in smoke.stdout
    assert "smoke: export ok" in smoke.stdout
