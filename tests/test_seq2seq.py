"""seq2seq: pair readers, bucketing, masking, sampled softmax, decoding, eval, predict, export."""

from __future__ import annotations

import json
import textwrap
import zipfile

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import run_tftrain
from tftrain.config import config_from_dict
from tftrain.errors import DataError

TINY_DATES = {
    "name": "tiny_dates",
    "seed": 3,
    "model": {
        "type": "seq2seq",
        "embedding_dim": 32,
        "units": 64,
        "attention": "luong",
        "beam_width": 3,
        "max_decode_length": 12,
    },
    "data": {
        "type": "synthetic_pairs",
        "task": "dates",
        "target_tokens": "characters",
        "num_train": 3000,
        "num_valid": 200,
        "num_test": 200,
        "bucket_width": 2,
    },
    "train": {
        "batch_size": 64,
        "epochs": 4,
        "steps_per_loop": 10,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "clip_grad_norm": 5.0,
    },
    "eval": {"batch_size": 200},
    "export": {"check_examples": 8},
}


def invoke(*args):
    from tftrain.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, f"{args}: {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def build(tree: dict):
    from tftrain.registry import build_dataset, build_model

    config = config_from_dict(tree)
    dataset = build_dataset(config)
    return config, dataset, build_model(config, dataset.spec())


@pytest.fixture(scope="module")
def dates_run(tmp_path_factory):
    """A tiny date model trained once through the CLI, shared by the tests below."""
    root = tmp_path_factory.mktemp("dates")
    config = root / "tiny_dates.yaml"
    config.write_text(yaml.safe_dump(TINY_DATES))
    run_dir = root / "run"
    invoke("fit", config, "--run-dir", run_dir, "--quiet")
    return run_dir


def test_tiny_date_task_learns_and_eval_reports_bleu(dates_run):
    metrics = json.loads(invoke("eval", dates_run, "--json", "--quiet").stdout)
    assert metrics["accuracy"] > 0.95
    assert metrics["greedy_exact_match"] >= 0.85
    assert metrics["exact_match"] >= 0.85  # beam width 3
    assert 85 <= metrics["bleu"] <= 100
    assert metrics["beam_width"] == 3


def test_beam_width_one_equals_greedy(dates_run):
    from tftrain.lazy import tf
    from tftrain.models.seq2seq_decoding import beam_search, greedy_decode
    from tftrain.runners.restore import restore_run

    model = restore_run(dates_run).model
    sentences = ["the 3rd of march 2001", "june 13, 1980", "31/12/1999", "sat 1 jan 2000", "zz"]
    source = tf.cast(model.text_to_ids(tf.constant(sentences)), tf.int32)
    memory, mask, states = model.network.encode(source)
    limit = model.config.max_decode_length
    greedy = greedy_decode(model.network, memory, mask, states, max_length=limit).numpy()
    beam = beam_search(
        model.network,
        memory,
        mask,
        states,
        width=1,
        vocab_size=len(model.target_vocabulary),
        max_length=limit,
        alpha=model.config.length_penalty,
    ).numpy()
    np.testing.assert_array_equal(greedy, beam)
    texts = [t.decode() for t in model.ids_to_text(tf.constant(greedy)).numpy()]
    assert texts[0] == "2001-03-03"
    assert texts[1] == "1980-06-13"


def test_export_reloads_in_fresh_process_and_matches_predict(dates_run, tmp_path):
    sentences = ["the 3rd of march 2001", "December 25, 1975", "01/02/2003", ""]
    inputs = tmp_path / "sentences.txt"
    inputs.write_text("\n".join(sentences) + "\n")
    plot = tmp_path / "attention.png"
    predicted = invoke(
        "predict", dates_run, "--input", inputs, "--format", "jsonl", "--attention-plot", plot
    ).stdout
    rows = [json.loads(line) for line in predicted.splitlines()]
    assert [r["source"] for r in rows] == sentences
    assert rows[0]["translation"] == "2001-03-03"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 2000

    out = tmp_path / "saved"
    invoke("export", dates_run, "--out", out, "--quiet")
    script = textwrap.dedent(
        f"""
        import json, tensorflow as tf
        serve = tf.saved_model.load({str(out)!r}).signatures["serving_default"]
        result = serve(source=tf.constant({sentences!r}))["translation"].numpy()
        print(json.dumps([t.decode() for t in result]))
        """
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [r["translation"] for r in rows]


def reverse_tree(**data) -> dict:
    return {
        "model": {"type": "seq2seq", "embedding_dim": 16, "units": 32},
        "data": {
            "type": "synthetic_pairs",
            "task": "reverse",
            "num_train": 1000,
            "num_valid": 50,
            "num_test": 50,
            "min_length": 2,
            "max_length": 24,
            **data,
        },
    }


def test_bucketing_keeps_padding_small_and_batches_reproducible():
    def padding(dataset, **options):
        padded = real = 0
        spreads = []
        batches = list(dataset.batches("train", 32, **options))
        for _, labels in batches:
            lengths = np.sum(labels.numpy() != 0, axis=1)
            padded += labels.shape[0] * labels.shape[1]
            real += lengths.sum()
            spreads.append(lengths.max() - lengths.min())
        return 1 - real / padded, max(spreads), batches

    _, bucketed, _ = build(reverse_tree(bucket_width=3))
    _, plain, _ = build(reverse_tree(bucket_width=0))
    fraction, spread, batches = padding(bucketed, shuffle=True, epoch=1)
    plain_fraction, plain_spread, _ = padding(plain, shuffle=True, epoch=1)
    assert spread < 3  # every batch's lengths lie inside one bucket of width 3
    assert fraction < 0.1 and plain_fraction > 0.3
    assert len(batches) == bucketed.steps("train", 32)
    # Order is a pure function of (seed, epoch), and skip drops whole batches.
    _, _, again = padding(bucketed, shuffle=True, epoch=1)
    _, _, skipped = padding(bucketed, shuffle=True, epoch=1, skip=5)
    _, _, other = padding(bucketed, shuffle=True, epoch=2)
    first = [b[1].numpy().tolist() for b in batches]
    assert first == [b[1].numpy().tolist() for b in again]
    assert first[5:] == [b[1].numpy().tolist() for b in skipped]
    assert first != [b[1].numpy().tolist() for b in other]


@pytest.mark.parametrize(
    "model",
    [
        {"attention": "bahdanau", "bidirectional": True, "num_layers": 2},
        {"attention": "luong", "cell": "gru"},
        {"attention": "none", "tie_embeddings": True},
    ],
)
def test_padding_does_not_change_the_loss(model):
    from tftrain.lazy import tf

    tree = reverse_tree(bucket_width=0, max_length=8)
    tree["model"].update(model)
    _, dataset, seq2seq = build(tree)
    features, labels = next(iter(dataset.batches("train", 8)))
    names = [v.path for v in seq2seq.network.trainable_variables]
    assert any("output_kernel" in n for n in names) != bool(model.get("tie_embeddings"))

    def loss(features, labels):
        outputs, _ = seq2seq.forward(features, training=False)
        metrics = seq2seq.losses_and_metrics(labels, outputs)
        return [float(v) for pair in metrics.values() for v in pair]

    def pad(x, extra):
        return tf.pad(x, [[0, 0], [0, extra]])

    longer = {"source": pad(features["source"], 7), "target_in": pad(features["target_in"], 5)}
    before, after = loss(features, labels), loss(longer, pad(labels, 5))
    assert before[1] == after[1] == float(np.sum(labels.numpy() != 0))  # per-token count
    np.testing.assert_allclose(before, after, rtol=1e-5)
    # ... while a real token does change it.
    changed = labels.numpy().copy()
    changed[0, 0] = (changed[0, 0] % 20) + 4
    assert abs(loss(features, tf.constant(changed))[0] - before[0]) > 1e-4


def test_sampled_softmax_trains_and_evaluates_with_full_softmax(tmp_path):
    from tftrain.runners.trainer import Trainer

    tree = reverse_tree(max_length=5, num_train=1200, bucket_width=2)
    tree["model"].update(loss="sampled_softmax", num_sampled=6, units=64, attention="luong")
    tree["train"] = {"batch_size": 32, "epochs": 4, "steps_per_loop": 10, "optimizer": {}}
    tree["train"]["optimizer"] = {"name": "adam", "learning_rate": 0.01}
    trainer = Trainer(config_from_dict(tree), tmp_path / "run", quiet=True)
    before = trainer.evaluate("test")
    assert before["loss"] == pytest.approx(np.log(24), abs=0.3)  # full softmax over 24 ids
    trainer.fit()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train_lines = [line for line in lines if line.get("split") == "train"]
    assert np.isnan(train_lines[-1]["accuracy"])  # not measured under the sampled loss
    after = trainer.evaluate("test")
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > 0.6
    extra = trainer.model.evaluate_extra(trainer.dataset, "test")
    assert extra["exact_match"] > 0.2


def write_lines(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def pairs_tree(**data) -> dict:
    return {"model": {"type": "seq2seq"}, "data": {"type": "sentence_pairs", **data}}


def test_misaligned_files_are_rejected_with_the_line_number(tmp_path):
    source = write_lines(tmp_path / "src.txt", [b"a b", b"c d", b"e f", b"g h", b"i j"])
    target = write_lines(tmp_path / "tgt.txt", [b"b a", b"d c", b"f e", b"h g"])
    with pytest.raises(DataError) as error:
        build(pairs_tree(source_path=str(source), target_path=str(target)))
    message = str(error.value)
    assert "src.txt has 5 lines" in message and "tgt.txt has 4" in message
    assert "line 5 of" in message

    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump(pairs_tree(source_path=str(source), target_path=str(target))))
    done = run_tftrain("config", "validate", config)
    assert done.returncode == 0
    from tftrain.cli import cli

    result = CliRunner().invoke(cli, ["fit", str(config), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "line 5 of" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"hola\thello", b"", b"si\tyes"], "line 2: expected 'source<TAB>target"),
        ([b"hola\thello", b"adios\t  \tCC-BY", b"si\tyes"], "line 2: empty target sentence"),
        ([b"hola\thello", b"si\tyes", b"caf\xe9\tcoffee"], "line 3: invalid UTF-8 (byte 0xe9"),
        ([b"hola hello"], "line 1: expected 'source<TAB>target"),
    ],
)
def test_bad_tsv_lines_are_named(tmp_path, lines, expected):
    path = write_lines(tmp_path / "pairs.tsv", lines)
    with pytest.raises(DataError, match="pairs.tsv, line"):
        try:
            build(pairs_tree(path=str(path), valid_count=0, test_count=0))
        except DataError as error:
            assert expected in str(error)
            raise


def test_zip_member_and_vocabulary_caps(tmp_path):
    lines = [
        f"I see {i}.\tVeo {i}.\tCC-BY 2.0 (France) Attribution: tatoeba.org" for i in range(30)
    ]
    archive = tmp_path / "spa-eng.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("_about.txt", "about this file")
        handle.writestr("spa.txt", "\n".join(lines) + "\n")
    tree = pairs_tree(path=str(archive), swap=True, test_count=5, valid_count=5)
    tree["data"]["target_vocab_size"] = 8
    _, dataset, _ = build(tree)
    spec = dataset.spec()
    assert dataset.num_examples("train") == 20 and dataset.num_examples("test") == 5
    assert spec.extra["source_vocabulary"][:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert {"veo", "."} <= set(spec.extra["source_vocabulary"])  # swapped, lower-cased, split
    assert spec.extra["target_vocabulary"][:7] == ["<pad>", "<unk>", "<s>", "</s>", ".", "i", "see"]
    assert len(spec.extra["target_vocabulary"]) == 8
    assert dataset.split_data("test").target_tokens[0][:2] == ["i", "see"]


@pytest.mark.slow
def test_real_spanish_english_pairs_load():
    from tests.conftest import SHARED_DATA

    archive = SHARED_DATA / "parallel" / "spa-eng.zip"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (real data for the results table)")
    tree = pairs_tree(path=str(archive), swap=True, max_pairs=5000, test_count=100, valid_count=100)
    _, dataset, _ = build(tree)
    assert dataset.num_examples("train") == 4800
    first = dataset.split_data("train")
    assert (first.source_text[0], first.target_tokens[0]) == ("Ve.", ["go", "."])
    from tftrain.data.pair_files import read_tsv_pairs

    assert len(read_tsv_pairs(archive)) == 118121  # the count in ../shared/data/README.md
