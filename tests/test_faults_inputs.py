"""Hostile and broken inputs (issue 13): each gets a clear error and an exit code, never a
traceback, an internal error, a huge allocation or a file's secret content in the message."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
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
    nul = write_config(BASE + 'include: "a\\0b"\n', name="nul.yaml")
    check_clean(cli("config", "validate", nul, expect=None), 2, "embedded null byte")
    long = write_config(BASE + f"include: {'x' * 5000}.yaml\n", name="long.yaml")
    text = check_clean(cli("config", "validate", long, expect=None), 2, "File name too long")
    assert len(text) < 400
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


def test_paths_the_system_refuses_are_usage_errors(cli, write_config, tmp_path):
    """Too long or under a file: the config, a run to evaluate, a run to create."""
    long = tmp_path / ("x" * 300)
    text = check_clean(cli("fit", f"{long}.yaml", expect=None), 2, "cannot read config file")
    assert "File name too long" in text and len(text) < 400
    text = check_clean(cli("eval", long, expect=None), 2, "cannot use run directory")
    assert "File name too long" in text and len(text) < 400
    config = write_config(BASE)
    text = check_clean(
        cli("fit", config, "--run-dir", long, expect=None), 2, "cannot create run directory"
    )
    assert "File name too long" in text and len(text) < 400
    under_a_file = config / "run"
    check_clean(
        cli("fit", config, "--run-dir", under_a_file, expect=None),
        2,
        f"cannot create run directory {under_a_file}: Not a directory",
    )


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
        ("model.activation=x", "'model.activation' must be one of 'relu'"),
        ("model.kernel_initializer=zero", "did you mean 'zeros'?"),
        ("model.hidden_units=[8, 0]", "'model.hidden_units[1]' must be at least 1, got 0 (--set"),
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


# --- archives and data files (items 6, 15, 16) ------------------------------------------------


def zip_of_zeros(path, member: str, megabytes: int):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(member, "w", force_zip64=True) as handle:
            for _ in range(megabytes):
                handle.write(bytes(2**20))


def pairs_config(write_config, archive) -> str:
    tree = {"name": "p", "model": {"type": "seq2seq"}, "data": {"type": "sentence_pairs"}}
    tree["data"]["path"] = str(archive)
    return write_config(yaml.safe_dump(tree), name="pairs.yaml")


def test_zip_bomb_member_is_refused_before_it_is_unpacked(cli, write_config, tmp_path):
    zip_of_zeros(tmp_path / "bomb.zip", "spa.txt", 80)
    assert (tmp_path / "bomb.zip").stat().st_size < 200_000
    tracemalloc.start()
    result = cli("data", "inspect", pairs_config(write_config, tmp_path / "bomb.zip"), expect=None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    check_clean(result, 1, "bomb.zip:spa.txt unpacks to 83,886,080 bytes", "beyond the limit")
    assert peak < 40 * 2**20, f"peak {peak:,} bytes"


def test_gzip_is_read_only_up_to_the_limit(cli, write_config, tmp_path, monkeypatch):
    from tests.test_data import make_mnist

    make_mnist(tmp_path)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        for _ in range(40):
            handle.write(bytes(2**20))
    config = write_config(BASE.replace("digits", f"idx\n  path: {tmp_path}"), name="idx.yaml")
    monkeypatch.setenv("TFTRAIN_MAX_UNPACKED_MB", "8")
    tracemalloc.start()
    result = cli("data", "inspect", config, expect=None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    check_clean(result, 1, "train-images-idx3-ubyte.gz unpacks to more than 8,388,608 bytes from")
    assert peak < 24 * 2**20, f"peak {peak:,} bytes"


def patch_zip(path, member: str, *, flags: int = 0, method: int | None = None):
    """Rewrite a member's flags / compression method in both of its zip headers."""
    raw = bytearray(path.read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = raw.index(signature)
        raw[start + flag_at] |= flags
        if method is not None:
            raw[start + flag_at + 2 : start + flag_at + 4] = method.to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as archive:  # the archive itself still opens
        assert archive.namelist() == [member]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"flags": 0x1}, "enc.zip:spa.txt is encrypted"),
        ({"method": 6}, "enc.zip:spa.txt uses compression method 6, which Python cannot read"),
    ],
)
def test_encrypted_or_oddly_compressed_member_is_named(cli, write_config, tmp_path, change, needle):
    with zipfile.ZipFile(tmp_path / "enc.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("spa.txt", "Hi.\tHola.\n" * 50)
    patch_zip(tmp_path / "enc.zip", "spa.txt", **change)
    result = cli("data", "inspect", pairs_config(write_config, tmp_path / "enc.zip"), expect=None)
    check_clean(result, 1, needle)


def test_npz_whose_header_asks_for_terabytes_is_refused(cli, tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(64))
        archive.writestr("y.npy", header.getvalue() + bytes(64))
    result = cli("data", "inspect", tmp_path / "lie.npz", expect=None)
    check_clean(result, 1, "lie.npz:x.npy: its header declares shape [1000000000000]")


def test_csv_that_is_not_utf8_names_line_and_byte(cli, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,b,label\n1,2,0\n3,caf\xe9,1\n".encode("latin-1"))
    result = cli("data", "inspect", path, expect=None)
    check_clean(result, 1, "latin.csv, line 3: not valid UTF-8 (byte 0xe9 at byte offset 21)")


@pytest.mark.parametrize(
    ("rows", "task", "needle"),
    [
        ("1,2,0\n3,4,1\n5,nan,0\n", "classification", "line 4, column 2 ('b'): 'nan'"),
        ('1,"2",0\n"3\n",inf,1\n', "classification", "line 3, column 2 ('b'): 'inf'"),
        ("1,2,0.5\n3,1e39,1.5\n", "classification", "line 3, column 2 ('b'): '1e39'"),
        ("1,2,0.5\n3,4,-inf\n", "regression", "line 3, column 3 ('label'): '-inf'"),
    ],
)
def test_csv_nan_and_inf_name_file_line_and_column(cli, write_config, tmp_path, rows, task, needle):
    (tmp_path / "values.csv").write_text("a,b,label\n" + rows)
    data = {"type": "csv", "path": str(tmp_path / "values.csv"), "task": task}
    config = write_config(yaml.safe_dump({"model": {"type": "linear"}, "data": data}))
    check_clean(cli("data", "inspect", config, expect=None), 1, f"values.csv, {needle}")


# --- the compiled-op cache (item 7) -----------------------------------------------------------


def test_op_cache_refuses_shared_directories_and_planted_libraries(tmp_path, monkeypatch, capsys):
    from tftrain import ops

    cache = tmp_path / "ops"
    cache.mkdir()
    cache.chmod(0o777)  # as a shared /tmp folder would be
    monkeypatch.setenv("TFTRAIN_OPS_CACHE", str(cache))
    monkeypatch.setenv("CXX", "no-such-compiler")  # any rebuild fails fast, leaving no library
    with pytest.raises(ops.OpBuildError, match=r"refusing the op cache .*mode 777"):
        ops.build("word2vec")
    cache.chmod(0o700)
    planted = ops.library_path("word2vec")
    digest = planted.with_name(planted.name + ".sha256")
    for mode, written, reason in [
        (0o644, None, "does not match the digest"),  # no digest file
        (0o644, "0" * 64, "does not match the digest"),
        (0o666, "right", "writable by group or others"),
    ]:
        planted.write_bytes(b"\x7fELF planted library")
        planted.chmod(mode)
        digest.unlink(missing_ok=True)
        if written:
            digest.write_text(ops.sha256(planted) if written == "right" else written)
        with pytest.raises(ops.OpBuildError, match="no C\\+\\+ compiler 'no-such-compiler'"):
            ops.build("word2vec")  # refused, deleted, and the rebuild was attempted
        assert reason in capsys.readouterr().err
        assert not planted.exists()
    planted.write_bytes(b"\x7fELF planted library")
    planted.chmod(0o644)
    digest.write_text(ops.sha256(planted))
    assert ops.build("word2vec") == planted  # private and matching its digest: trusted


def test_a_built_op_has_its_digest_beside_it():
    from tftrain import ops

    library = ops.build("word2vec")  # tests share one cache per checkout (conftest.py)
    digest = library.with_name(library.name + ".sha256")
    assert digest.read_text().strip() == ops.sha256(library)
    assert ops.not_private(library) is None and ops.not_private(digest) is None
    assert callable(ops.load("word2vec").word2vec_train_tokens)  # and it loads


def test_data_paths_to_special_files_are_refused(cli, write_config, tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    for path in ("/dev/zero", tmp_path / "pipe.csv"):
        data = {"type": "csv", "path": str(path)}
        config = write_config(yaml.safe_dump({"model": {"type": "linear"}, "data": data}))
        result = cli("data", "inspect", config, expect=None)
        check_clean(result, 2, f"{path} (from 'data.path') is not a regular file or folder")


def test_every_activation_and_initializer_a_config_accepts_is_known_to_keras():
    import typing

    import keras

    from tftrain.models.base import Activation, Initializer

    for name in typing.get_args(Activation):
        assert callable(keras.activations.get(name)), name
    for name in typing.get_args(Initializer):
        assert keras.initializers.get(name) is not None, name


def test_fit_with_an_escaping_name_touches_nothing(cli, write_config, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("../../escaped", str(tmp_path / "absolute")):
        config = write_config(BASE.replace("name: t", f"name: {name}"), name="escape.yaml")
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        check_clean(cli("fit", config, expect=None), 2, "use --run-dir")
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escaped").exists()
