"""`tftrain init DATA`: the guess, its comments, and that the written config runs as it is."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml

from tests.conftest import PROJECT, SHARED_DATA
from tftrain.registry import datasets

WORDS = "the cat sat on a mat while dogs ran far away and birds sang loud songs".split()


def sentence(rng, n=8) -> str:
    return " ".join(rng.choice(WORDS, size=n))


def init(cli, data, *flags, expect=0):
    """`tftrain init DATA FLAGS` to stdout; (text, parsed config) on success."""
    result = cli("init", data, *flags, expect=expect)
    if expect:
        return result.stderr, None
    return result.stdout, yaml.safe_load(result.stdout)


def comments(text) -> str:
    """The comment lines as one paragraph (init wraps them)."""
    lines = [line[2:].strip() for line in text.splitlines() if line.startswith("# ")]
    return " ".join(lines)


def check_runs(cli, tmp_path, text):
    """The config as written passes `config validate` and `fit --smoke` (exit 0)."""
    config = tmp_path / "written.yaml"
    config.write_text(text)
    cli("config", "validate", config)
    result = cli("fit", config, "--smoke", "--quiet", "--run-dir", tmp_path / "run")
    assert "smoke: export ok" in result.stdout, result.stdout


def check_header(text, task):
    first, *rest = text.splitlines()
    assert first.startswith("# ") and first.endswith(".") and len(first) <= 100, first
    assert f"# Task: {task} (change with --task), because" in text
    notes = [line for line in rest if line.startswith("#") and "`tftrain init" not in line]
    assert all(len(line) <= 100 for line in notes), text  # paths may lengthen the command


def table_file(path, header, rows, delimiter=","):
    lines = ([delimiter.join(header)] if header else []) + [delimiter.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- kinds whose datasets exist: the config runs -------------------------------------------


def test_csv_with_a_category_column_is_classification(cli, tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        [f"{v:.3f}" for v in rng.normal(size=3)] + [str(rng.choice(["red", "green", "blue"]))]
        for _ in range(120)
    ]
    path = table_file(tmp_path / "flowers.csv", ["a", "b", "c", "colour"], rows)
    text, config = init(cli, path)
    check_header(text, "classification")
    assert config["data"] | {"path": None} == config["data"] | {
        "type": "csv",
        "path": None,
        "label_column": "colour",
        "task": "classification",
        "header": True,
        "delimiter": ",",
    }
    assert config["data"]["path"] == str(path)
    assert "Read flowers.csv: 120 rows, 4 columns" in comments(text)
    assert config["model"]["type"] == "softmax"
    check_runs(cli, tmp_path, text)


def test_numbers_only_csv_is_regression_on_the_last_column(cli, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 2))
    rows = [[f"{a:.4f}", f"{b:.4f}", f"{2 * a - b + 0.1:.4f}"] for a, b in x]
    path = table_file(tmp_path / "plane.csv", ["x0", "x1", "y"], rows)
    text, config = init(cli, path)
    check_header(text, "regression")
    assert (config["model"]["type"], config["data"]["label_column"]) == ("linear", "y")
    assert config["data"]["task"] == "regression"
    check_runs(cli, tmp_path, text)


def test_npz_with_integer_labels(cli, tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "arrays.npz"
    np.savez(path, features=rng.normal(size=(80, 5)).astype("float32"), y=rng.integers(0, 3, 80))
    text, config = init(cli, path)
    check_header(text, "classification")
    assert (config["data"]["x_key"], config["data"]["y_key"]) == ("features", "y")
    assert "features (80, 5) float32" in comments(text)
    check_runs(cli, tmp_path, text)


def write_idx(path, array, code=0x08):
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_folder(cli, tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "digits"
    folder.mkdir()
    for prefix, count in (("train", 300), ("t10k", 40)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (count, 8, 8)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    text, config = init(cli, folder / "train-images-idx3-ubyte.gz")  # a file names its folder
    check_header(text, "classification")
    assert config["data"] | {"valid_count": 30, "path": str(folder)} == config["data"]
    assert "300 training and 40 test images of 8x8 pixels" in comments(text)
    check_runs(cli, tmp_path, text)


def test_image_folder(cli, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 255, (160, 200, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / label / f"{i}.png")
    text, config = init(cli, tmp_path / "pets")
    check_header(text, "classification")
    assert config["data"]["type"] == "image_folder"
    assert config["data"]["image_size"] == [102, 128]  # the longer side down to 128
    assert "cat 8, dog 8 images per class" in comments(text)
    assert "  # augment: {horizontal_flip: true, crop_padding: 4}" in text  # a key to change
    check_runs(cli, tmp_path, text)


def test_corpus_folder_is_a_language_model(cli, tmp_path):
    rng = np.random.default_rng(5)
    for split, lines in (("train", 400), ("valid", 60), ("test", 60)):
        text = "\n".join(sentence(rng) for _ in range(lines)) + "\n"
        (tmp_path / f"toy.{split}.txt").write_text(text)
    text, config = init(cli, tmp_path)
    check_header(text, "language_model")
    assert config["data"] | {"type": "ptb", "valid_file": "toy.valid.txt"} == config["data"]
    assert config["data"]["vocab_size"] == len(WORDS) + 2  # every word, <unk> and <eos>
    check_runs(cli, tmp_path, text)


def test_one_text_file_is_word2vec_and_says_why(cli, tmp_path):
    rng = np.random.default_rng(6)
    path = tmp_path / "notes.txt"
    path.write_text("\n".join(sentence(rng) for _ in range(300)) + "\n")
    text, config = init(cli, path)
    check_header(text, "word2vec")
    assert "a language model would need a valid file" in comments(text)
    assert config["data"]["type"] == "text_corpus"
    init(cli, path, "--task", "language_model", expect=2)
    check_runs(cli, tmp_path, text)


def test_parallel_text_in_a_zip_is_seq2seq(cli, tmp_path):
    rng = np.random.default_rng(7)
    lines = [f"{sentence(rng, 4)}\t{sentence(rng, 5)}\tCC-BY #{i}" for i in range(200)]
    path = tmp_path / "pairs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pairs.txt", "\n".join(lines) + "\n")
        archive.writestr("_about.txt", "not the data")
    text, config = init(cli, path)
    check_header(text, "seq2seq")
    assert (config["data"]["type"], config["data"]["member"]) == ("sentence_pairs", "pairs.txt")
    assert "Read pairs.zip:pairs.txt: 200 pairs" in comments(text)
    check_runs(cli, tmp_path, text)


# --- text classification and series: the agreed keys --------------------------------------


# The keys the text, series and init engineers agreed on (issue 15).
AGREED = {
    "text_classification": {
        *("type", "path", "valid_path", "test_path", "format", "text_column", "label_column"),
        *("header", "delimiter", "text_field", "label_field", "lowercase", "split_punctuation"),
        *("max_length", "min_count", "max_vocab", "oov_token", "class_weights"),
        *("valid_fraction", "valid_count", "test_fraction", "holdout"),
    },
    "series_csv": {
        *("type", "path", "time_column", "target", "features", "window", "horizon", "stride"),
        *("season", "missing", "valid_fraction", "test_fraction"),
    },
}


def check_agreed_or_runs(cli, tmp_path, text, config):
    """Runs as written once the dataset is on main; until then, only agreed keys."""
    kind = config["data"]["type"]
    assert set(config["data"]) <= AGREED[kind]
    if kind in datasets.names():
        check_runs(cli, tmp_path, text)


def test_labelled_texts_tsv(cli, tmp_path):
    rng = np.random.default_rng(8)
    rows = [[str(rng.choice(["ham"] * 7 + ["spam"])), sentence(rng)] for _ in range(100)]
    path = table_file(tmp_path / "messages", None, rows, "\t")
    text, config = init(cli, path)
    check_header(text, "text_classification")
    assert config["data"] | {"text_column": 1, "label_column": 0, "header": False} == (
        config["data"] | {"type": "text_classification", "format": "csv", "delimiter": "\t"}
    )
    assert "class_weights: balanced" in text
    check_agreed_or_runs(cli, tmp_path, text, config)


def test_jsonl_texts(cli, tmp_path):
    rng = np.random.default_rng(9)
    lines = [json.dumps({"id": i, "body": sentence(rng), "stars": int(i % 3)}) for i in range(60)]
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(lines) + "\n")
    text, config = init(cli, path)
    check_header(text, "text_classification")
    assert (config["data"]["text_field"], config["data"]["label_field"]) == ("body", "stars")
    assert config["model"]["type"] == "lstm"  # the lstm config runs in the TSV test
    text, config = init(cli, path, "--model", "cnn")
    assert config["model"] == {"type": "cnn", "preset": "kim2014"}  # agreed: Kim (2014)
    check_agreed_or_runs(cli, tmp_path, text, config)
    init(cli, path, "--model", "linear", expect=2)


def test_folder_of_texts(cli, tmp_path):
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            (tmp_path / "imdb" / split / label).mkdir(parents=True)
            for i in range(3):
                (tmp_path / "imdb" / split / label / f"{i}.txt").write_text(f"a {label} film")
    text, config = init(cli, tmp_path / "imdb")
    check_header(text, "text_classification")
    assert config["data"] | {"format": "folders", "test_fraction": 0.0} == config["data"]
    assert "(train/ and test/ are the given splits)" in comments(text)
    check_agreed_or_runs(cli, tmp_path, text, config)


def test_dated_values_are_a_forecast(cli, tmp_path):
    rows = [[f"2020-01-{d:02d}", f"{10 + np.sin(d):.2f}"] for d in range(1, 32)]
    path = table_file(tmp_path / "temps.csv", ["Date", "Temp"], rows)
    text, config = init(cli, path)
    check_header(text, "forecasting")
    assert config["data"] | {"time_column": "Date", "target": "Temp", "season": 365} == (
        config["data"] | {"type": "series_csv", "window": 2}
    )
    assert config["model"]["type"] == "lstm"
    check_agreed_or_runs(cli, tmp_path, text, config)


# --- questions, refusals, output ----------------------------------------------------------


def test_two_possible_labels_is_a_question(cli, tmp_path):
    rng = np.random.default_rng(10)
    rows = [
        [f"{rng.normal():.3f}", str(rng.choice(["a", "b"])), str(rng.choice(["x", "y", "z"]))]
        for _ in range(60)
    ]
    path = table_file(tmp_path / "t.csv", ["value", "group", "kind"], rows)
    message, _ = init(cli, path, expect=2)
    assert "two columns could be the label: group, kind; pass --label COLUMN" in message
    message, _ = init(cli, path, "--label", "kind", expect=2)  # group is then a text feature
    assert "group (category, e.g." in message and "not numeric" in message
    init(cli, path, "--label", "nope", expect=2)


def test_analogy_questions_are_not_a_corpus(cli, tmp_path):
    path = tmp_path / "questions-words.txt"
    path.write_text(": capital\nAthens Greece Oslo Norway\nRome Italy Paris France\n")
    message, _ = init(cli, path, expect=2)
    assert "analogy questions" in message and "model.analogies" in message


def test_output_file_and_force(cli, tmp_path):
    path = table_file(tmp_path / "d.csv", ["x", "y"], [[str(i), str(i % 2)] for i in range(30)])
    out = tmp_path / "config.yaml"
    result = cli("init", path, "-o", out)
    assert result.stdout == "" and "wrote" in result.stderr
    assert out.read_text() == init(cli, path)[0]  # the same text as on stdout
    out.write_text("mine")
    assert "--force" in cli("init", path, "-o", out, expect=2).stderr
    assert out.read_text() == "mine"
    cli("init", path, "-o", out, "--force")
    assert yaml.safe_load(out.read_text())["data"]["type"] == "csv"
    assert "no such file" in cli("init", tmp_path / "missing.csv", expect=2).stderr


def test_init_does_not_import_tensorflow(tmp_path):
    path = table_file(tmp_path / "d.csv", ["x", "y"], [[str(i), str(i % 2)] for i in range(30)])
    code = (
        "import sys; from tftrain.cli import cli\n"
        f"cli(['init', {str(path)!r}], standalone_mode=False)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Classification of y")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, task",
    [
        ("mnist", "classification"),
        ("ptb", "language_model"),
        ("parallel/spa-eng.zip", "seq2seq"),
        ("text/SMSSpamCollection", "text_classification"),
        ("series/daily-min-temperatures.csv", "forecasting"),
    ],
)
def test_shared_data(cli, name, task, tmp_path):
    if not (SHARED_DATA / name).exists():
        pytest.skip(f"{SHARED_DATA / name} is not on this machine")
    text, config = init(cli, SHARED_DATA / name)
    check_header(text, task)
    if config["data"]["type"] in datasets.names():  # the real files: validate, no training
        (tmp_path / "written.yaml").write_text(text)
        cli("config", "validate", tmp_path / "written.yaml")


def test_flags_override_the_guess(cli, tmp_path):
    path = table_file(tmp_path / "d.csv", ["x", "y"], [[str(i), str(i % 3)] for i in range(60)])
    assert init(cli, path)[1]["data"]["task"] == "classification"  # y has three values
    text, config = init(cli, path, "--task", "regression")
    check_header(text, "regression")
    assert (config["model"]["type"], config["data"]["label_column"]) == ("linear", "y")
    assert "does not fit" in init(cli, path, "--task", "regression", "--model", "cnn", expect=2)[0]


def test_series_gaps_and_a_numeric_time_column(cli, tmp_path):
    rows = [[str(t), "" if t == 7 else f"{t * 0.5:.1f}", f"{t % 4}.5"] for t in range(100)]
    path = table_file(tmp_path / "sensor.csv", ["t", "level", "other"], rows)
    message, _ = init(cli, path, "--task", "forecasting", expect=2)
    assert "3 columns could be the target: t, level, other; pass --label COLUMN" in message
    text, config = init(cli, path, "--time", "t", "--label", "level")
    check_header(text, "forecasting")
    assert config["data"] | {"time_column": "t", "target": "level"} == config["data"]
    assert config["data"]["missing"] == "interpolate" and "1 empty level values" in comments(text)


def test_unreadable_files_exit_1_naming_the_line(cli, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xff\n")
    assert "bad.csv, line 3: not valid UTF-8" in cli("init", path, expect=1).stderr
    path = tmp_path / "array.json"
    path.write_text('[{"text": "hi", "label": 1}]\n')
    assert "write one object per line" in cli("init", path, expect=1).stderr
