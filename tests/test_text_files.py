"""text_classification data: every reader, column/header/delimiter detection, errors, tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tftrain.config import config_from_dict
from tftrain.errors import ConfigError, DataError
from tftrain.registry import build_dataset


def dataset(path, seed: int = 0, **data):
    tree = {
        "model": {"type": "lstm", "task": "classification"},
        "data": {"type": "text_classification", "path": str(path), **data},
        "seed": seed,
    }
    return build_dataset(config_from_dict(tree))


def all_texts_and_labels(data) -> tuple[list[str], list[str]]:
    """Every split's raw texts and class names, whatever the split they went to."""
    names = data.spec().class_names
    texts, labels = [], []
    for split in ("train", "valid", "test"):
        if data.num_examples(split):
            texts += data.texts(split)
            labels += [names[i] for i in data.arrays(split)[1]]
    return texts, labels


SMS = [
    ("ham", 'Ok lar... Joking wif u "oni"...'),
    ("spam", "Free entry in 2 a wkly comp to win FA Cup, final tkts 21st May!"),
    ("ham", "U dun say so early hor, U c already then say..."),
    ("ham", "Nah I don't think he goes to usf"),
    ("spam", "WINNER!! You have been selected to receive a prize reward"),
    ("ham", "Even my brother is not like to speak with me"),
]


def test_tsv_without_header_sniffs_tab_detects_columns_and_keeps_quotes(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_text("".join(f"{label}\t{text}\n" for label, text in SMS))
    data = dataset(path, test_fraction=0, valid_fraction=0)
    texts, labels = all_texts_and_labels(data)
    assert sorted(zip(labels, texts, strict=True)) == sorted(SMS)  # no row lost to a header
    assert data.spec().class_names == ["ham", "spam"]


def test_csv_with_header_quoted_commas_and_an_id_column(tmp_path):
    rows = [("id", "review", "sentiment")] + [
        (str(i), f'"A review, number {i}, that goes on and on"', ["pos", "neg"][i % 2])
        for i in range(12)
    ]
    path = tmp_path / "reviews.csv"
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    data = dataset(path, test_fraction=0, valid_fraction=0)
    texts, labels = all_texts_and_labels(data)
    assert "A review, number 3, that goes on and on" in texts
    assert len(texts) == 12  # the header was recognised and skipped
    assert data.spec().class_names == ["neg", "pos"]
    by_text = dict(zip(texts, labels, strict=True))
    assert by_text["A review, number 3, that goes on and on"] == "neg"


def test_integer_labels_sort_numerically_and_columns_by_name_or_index(tmp_path):
    lines = ["label;text"] + [f"{[2, 10, 1][i % 3]};some words number {i}" for i in range(15)]
    path = tmp_path / "numbers.txt"
    path.write_text("\n".join(lines) + "\n")
    data = dataset(path, test_fraction=0, valid_fraction=0)
    assert data.spec().class_names == ["1", "2", "10"]
    named = dataset(path, text_column="text", label_column="label", valid_fraction=0)
    assert named.spec().class_names == ["1", "2", "10"]
    indexed = dataset(path, text_column=1, label_column=0, header=True, delimiter=";")
    assert indexed.spec().class_names == ["1", "2", "10"]


def test_column_errors_name_the_columns(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,label\n" + "".join(f"words {i},{i % 2}\n" for i in range(10)))
    with pytest.raises(ConfigError, match="not a column.*columns: text, label"):
        dataset(path, label_column="lable").spec()
    headless = tmp_path / "headless.csv"
    headless.write_text("".join(f"words {i},{i % 2}\n" for i in range(10)))
    with pytest.raises(ConfigError, match="no header; give a column index"):
        dataset(headless, label_column="label", header=False).spec()
    with pytest.raises(ConfigError, match="has 2 columns"):
        dataset(path, label_column=5).spec()


def test_two_label_like_columns_is_a_question(tmp_path):
    path = tmp_path / "two.csv"
    lines = ["text,topic,mood"] + [
        f"a long text about things number {i},{['a', 'b'][i % 2]},{['x', 'y', 'z'][i % 3]}"
        for i in range(20)
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="could be the label: 'topic', 'mood'.*label_column"):
        dataset(path).spec()
    assert dataset(path, label_column="mood").spec().class_names == ["x", "y", "z"]


def test_ragged_row_and_utf8_errors_name_file_and_line(tmp_path):
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("ham\thello there\nspam\twin\textra\nham\tok\n")
    with pytest.raises(DataError, match=r"ragged.tsv, line 2: 3 fields, expected 2"):
        dataset(ragged).spec()
    broken = tmp_path / "broken.tsv"
    broken.write_bytes(b"ham\thello\nspam\twin\nham\tcaf\xe9 au lait\n")
    with pytest.raises(DataError, match=r"broken.tsv, line 3: not valid UTF-8"):
        dataset(broken).spec()
    folder = tmp_path / "folders"
    for label in ("neg", "pos"):
        (folder / label).mkdir(parents=True)
        (folder / label / "1.txt").write_text("fine")
    (folder / "pos" / "2.txt").write_bytes(b"line one\nline \xff two\n")
    with pytest.raises(DataError, match=r"2.txt, line 2: not valid UTF-8"):
        dataset(folder).spec()


def test_json_lines_with_integer_labels_custom_fields_and_errors(tmp_path):
    path = tmp_path / "data.jsonl"
    records = [{"body": f"text {i}", "y": i % 3, "extra": None} for i in range(9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    data = dataset(path, text_field="body", label_field="y", test_fraction=0, valid_fraction=0)
    texts, labels = all_texts_and_labels(data)
    assert data.spec().class_names == ["0", "1", "2"]
    assert dict(zip(texts, labels, strict=True))["text 4"] == "1"
    with pytest.raises(DataError, match=r"data.jsonl, line 1: no field 'text'.*body, y"):
        dataset(path).spec()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 2\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: not valid JSON"):
        dataset(bad).spec()
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"text": "a b", "label": "x"}, {"text": "c", "label": "y"}]))
    assert dataset(array, test_fraction=0, valid_fraction=0).spec().class_names == ["x", "y"]


def test_class_folders_and_the_aclimdb_layout(tmp_path):
    root = tmp_path / "aclImdb"
    for split, count in (("train", 6), ("test", 4)):
        for label in ("neg", "pos"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                (root / split / label / f"{i}_7.txt").write_text(f"{label} review {i}<br />")
    (root / "train" / "unsup").mkdir()  # unlabelled reviews: not a class
    (root / "train" / "unsup" / "0_0.txt").write_text("no label")
    data = dataset(root, valid_fraction=0.25)
    assert data.spec().class_names == ["neg", "pos"]
    assert data.num_examples("test") == 8  # the given test split, not a random 20%
    assert data.num_examples("train") + data.num_examples("valid") == 12
    flat = dataset(root / "train", test_fraction=0, valid_fraction=0)
    assert flat.spec().class_names == ["neg", "pos", "unsup"]  # a plain folder per class
    with pytest.raises(DataError, match="one sub-folder of .txt files per class"):
        dataset(root / "train" / "neg").spec()


def test_vocabulary_from_training_split_only_with_max_length_and_counts(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("a\tGood, good GOOD film\nb\tbad film bad\na\tgood rare\n")
    test = tmp_path / "test.tsv"
    test.write_text("a\tunseenword good\nb\tbad bad bad bad bad bad\n")
    data = dataset(train, test_path=str(test), valid_fraction=0, max_length=4, min_count=2)
    spec = data.spec()
    # Lower-cased, punctuation split; "rare" (once) and test-only words are out of vocabulary.
    assert spec.vocabulary == ["<pad>", "<unk>", "good", "bad", "film"]
    assert spec.extra["text"] == {
        "lowercase": True,
        "split_punctuation": True,
        "max_length": 4,
        "oov_token": "<unk>",
    }
    ids = dict(zip(data.texts("test"), data.arrays("test")[0].tolist(), strict=True))
    assert ids["unseenword good"] == [1, 2, 0, 0]  # unknown, good, then padding
    assert ids["bad bad bad bad bad bad"] == [3, 3, 3, 3]  # truncated to max_length
    capped = dataset(train, valid_fraction=0, test_fraction=0, max_vocab=3)
    assert capped.spec().vocabulary == ["<pad>", "<unk>", "good"]


def test_balanced_class_weights_follow_the_training_counts(tmp_path):
    path = tmp_path / "skewed.tsv"
    path.write_text("".join(f"{'spam' if i < 5 else 'ham'}\tmessage {i}\n" for i in range(40)))
    data = dataset(path, test_fraction=0, valid_fraction=0, class_weights="balanced")
    weights = data.spec().extra["class_weights"]
    counts = np.bincount(data.arrays("train")[1])
    assert counts.tolist() == [35, 5]
    assert weights == pytest.approx([40 / (2 * 35), 40 / (2 * 5)])
    assert dataset(path).spec().extra["class_weights"] is None


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="data.path"):
        dataset("")
    with pytest.raises(ConfigError, match="data file not found"):
        dataset(tmp_path / "missing.csv").spec()
    one = tmp_path / "one.tsv"
    one.write_text("ham\thello\nham\tthere\n")
    with pytest.raises(DataError, match="at least two classes"):
        dataset(one, label_column=0).spec()
