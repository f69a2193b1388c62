"""Hostile and broken inputs (issue 13): each gets a clear error and an exit code, never a
traceback, an internal error, a huge allocation or a file's secret content in the message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import PROJECT

BASE = "name: t\nmodel:\n  type: softmax\ndata:\n  type: digits\n"


def check_clean(result, code: int, *needles: str) -> str:
    """The exit code, a message containing every needle, and no traceback."""
    text = result.stdout + result.stderr
    assert result.exit_code == code, text
    assert "Traceback" not in text and "internal error" not in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"
    return text


def limited_run(*args, cwd, memory_mb: int = 1024, timeout: int = 60):
    """`python -m tftrain ARGS` in a fresh process that may not allocate more than memory_mb."""

    def limit():
        import resource

        size = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return subprocess.run(
        [sys.executable, "-m", "tftrain", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )


# --- config files (item 5, 8, 9, 10, 11, 17) --------------------------------------------------


def test_alias_bomb_is_refused_without_expanding_it(tmp_path):
    levels = ["a0: &a0 {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}"]
    for i in range(1, 10):
        items = ", ".join(f"k{j}: *a{i - 1}" for j in range(9))
        levels.append(f"a{i}: &a{i} {{{items}}}")
    (tmp_path / "bomb.yaml").write_text(BASE + "model_extra:\n" + "\n".join(levels) + "\n")
    assert (tmp_path / "bomb.yaml").stat().st_size < 1000
    result = limited_run("config", "validate", "bomb.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "expands to more than 100,000 values" in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_aliases_within_limits_still_work(write_config):
    from tftrain.config import load_config

    path = write_config(BASE + "train: &t {batch_size: 7}\neval: {batch_size: 9}\n")
    assert load_config(path).train.batch_size == 7


def test_large_special_and_deep_config_files_are_refused(cli, write_config, tmp_path):
    big = write_config(BASE + "# padding\n" * 120_000, name="big.yaml")
    check_clean(cli("config", "validate", big, expect=None), 2, "larger than 1 MB")
    zero = write_config(BASE + "include: /dev/zero\n", name="zero.yaml")
    check_clean(cli("config", "validate", zero, expect=None), 2, "/dev/zero is not a regular file")
    for index in range(12):  # a chain c0 -> c1 -> ... -> c11
        write_config(
            f"include: c{index + 1}.yaml\n" if index < 11 else "seed: 1\n", f"c{index}.yaml"
        )
    deep = write_config(BASE + "include: c0.yaml\n", name="deep.yaml")
    check_clean(cli("config", "validate", deep, expect=None), 2, "includes nest more than 8 deep")
    write_config("seed: 1\n", name="leaf.yaml")  # many includes of includes, no cycle
    write_config("include: [leaf.yaml, leaf.yaml, leaf.yaml, leaf.yaml, leaf.yaml]\n", "mid.yaml")
    wide = write_config(BASE + "include: [" + ", ".join(["mid.yaml"] * 20) + "]\n", "wide.yaml")
    check_clean(cli("config", "validate", wide, expect=None), 2, "at most 64 included files")
    assert not (tmp_path / "runs").exists()


def test_errors_never_quote_an_included_files_content(cli, write_config):
    secret = "hunter2-Sesame"
    write_config(f"root:{secret}:20228:0:99999:7:::\nbin:*:20228::\n", name="shadow")
    check_clean(
        cli("config", "validate", write_config(BASE + "include: shadow\n"), expect=None),
        2,
        "unknown top-level key (not a valid name)",
        "shadow, line 1",
    )
    write_config(f'x: "{secret}\\q"\n', name="escape")  # a YAML error quoting the text
    write_config(f"[{secret}: 1\n", name="broken")  # a YAML error at the end of the file
    write_config(f"- {secret}\n", name="list")  # parses, but not as a mapping
    for name in ("escape", "broken", "list"):
        config = write_config(BASE + f"include: {name}\n", name=f"inc_{name}.yaml")
        text = check_clean(cli("config", "validate", config, expect=None), 2, name)
        assert secret not in text


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train=5", "'train' must be a mapping of options, got 5"),
        ("checkpoint=[1]", "'checkpoint' must be a mapping of options, got [1]"),
        ("device=x", "'device' must be a mapping of options, got 'x'"),
        ("eval=[]", "'eval' must be a mapping"),
        ("model=3", "'model' must be a mapping with a 'type'"),
        ("train.optimizer=5", "'train.optimizer' must be a mapping of options"),
        ("seed=4294967296", "'seed' must be less than 4294967296"),
        ("seed=-1", "'seed' must be at least 0"),
        ("name=../../escaped", "'name': must be a relative name without '..'"),
        ("name=/tmp/escaped", "use --run-dir"),
        ("name=a/../../b", "without '..'"),
    ],
)
def test_bad_overrides_are_config_errors(cli, write_config, override, needle):
    path = write_config(BASE)
    check_clean(cli("config", "validate", path, "--set", override, expect=None), 2, needle)


def test_largest_seed_and_nested_names_are_accepted(write_config):
    from tftrain.config import load_config

    config = load_config(write_config(BASE), ["seed=4294967295", "name=group/run-1"])
    assert (config.seed, config.name) == (2**32 - 1, "group/run-1")


def test_null_resets_an_optional_key_to_its_default(write_config, tmp_path):
    from tftrain.config import load_config

    (tmp_path / "train.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    config = {
        "model": {"type": "softmax"},
        "data": {"type": "csv", "path": "train.csv", "valid_path": "train.csv"},
        "train": {"batch_size": 7, "max_steps": 5},
        "checkpoint": {"best_metric": "accuracy"},
    }
    path = write_config(yaml.safe_dump(config))
    assert load_config(path).data.valid_path == "train.csv"
    reset = load_config(
        path,
        ["data.valid_path=null", "train.batch_size=null", "train.max_steps=null"]
        + ["checkpoint.best_metric=null", "train.optimizer=null"],
    )
    assert reset.data.valid_path is None
    assert reset.train.batch_size == 32  # null where a value is needed: the default
    assert reset.train.max_steps is None
    assert reset.checkpoint.best_metric is None  # null is a value here: no best checkpoint
    assert reset.train.optimizer.name == "sgd"
