"""word2vec: grouped corpus -> group purity; gensim reads our exports; analogy bookkeeping."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from tests.conftest import SHARED_DATA

TINY = {
    "name": "w2v_tiny",
    "seed": 0,
    "model": {"type": "word2vec", "embedding_size": 16, "negatives": 4},
    "data": {
        "type": "grouped_words",
        "groups": 4,
        "words_per_group": 6,
        "sentences": 1500,
        "held_out_sentences": 50,
        "window": 3,
    },
    "train": {
        "batch_size": 128,
        "epochs": 3,
        "steps_per_loop": 20,
        "optimizer": {"name": "sgd", "learning_rate": 0.025},
        "schedule": {"type": "linear"},
        "log_every_steps": 1000,
    },
    "eval": {"final_splits": ["valid"]},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny skip-gram run shared by the tests below (trained through the CLI)."""
    import yaml
    from click.testing import CliRunner

    from tftrain.cli import cli

    root = tmp_path_factory.mktemp("w2v")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run_dir = root / "run"
    result = CliRunner().invoke(cli, ["fit", str(config), "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    return run_dir


def test_grouped_corpus_neighbours_recover_the_groups(trained, cli):
    import json

    result = cli("eval", trained, "--split", "valid", "--json", "--quiet")
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["vocabulary"] == 4 * 6 + 5  # group words + the five function words
    assert metrics["group_purity@5"] >= 0.9
    assert metrics["loss"] < 2.5  # 5 * log(2) = 3.47 before training (4 noise words + 1)


def test_exported_vectors_load_in_gensim_with_the_same_neighbours(trained, cli, tmp_path):
    import gensim

    # --out NAME.txt / NAME.bin is that file (gensim's habit); --out FOLDER holds vectors.*.
    for out, flags, path in (
        (tmp_path / "vectors.txt", [], tmp_path / "vectors.txt"),
        (tmp_path / "w2v.bin", [], tmp_path / "w2v.bin"),
        (tmp_path / "folder", ["--binary"], tmp_path / "folder" / "vectors.bin"),
    ):
        cli("export", trained, "--format", "word2vec", "--out", out, "--quiet", *flags)
        assert path.is_file()
        binary = path.suffix == ".bin"
        vectors = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert len(vectors.index_to_key) == 29 and vectors.vector_size == 16
        for word in ("animal0", "city3"):
            result = cli("predict", trained, "--nearest", word, "--top-k", "5")
            rows = list(csv.DictReader(io.StringIO(result.stdout)))
            ours = [row["word"] for row in rows]
            theirs = [w for w, _ in vectors.most_similar(word, topn=5)]
            assert ours == theirs
            assert float(rows[0]["similarity"]) == pytest.approx(
                vectors.most_similar(word, topn=1)[0][1], abs=1e-5
            )
    # --force replaces an earlier one-file export (its manifest sits beside it), no other file.
    replace = ["--format", "word2vec", "--force", "--quiet"]
    cli("export", trained, "--out", tmp_path / "vectors.txt", *replace)
    (tmp_path / "notes.txt").write_text("mine")
    result = cli("export", trained, "--out", tmp_path / "notes.txt", *replace, expect=2)
    assert "is not a tftrain export" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_projector_files_parse(trained, cli, tmp_path):
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    out = tmp_path / "projector"
    cli("export", trained, "--format", "projector", "--out", out, "--quiet")
    vectors = np.loadtxt(out / "vectors.tsv", delimiter="\t")
    metadata = (out / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert vectors.shape == (29, 16)
    assert metadata[0] == "word\tcount" and len(metadata) == 30
    config = text_format.Parse(
        (out / "projector_config.pbtxt").read_text(), projector.ProjectorConfig()
    )
    assert config.embeddings[0].tensor_path == "vectors.tsv"
    assert config.embeddings[0].metadata_path == "metadata.tsv"


def test_predict_analogy_excludes_the_question_words(trained, cli):
    # city0 - animal0 + animal1: a city, by the groups (A - B + C, king man woman -> queen).
    result = cli("predict", trained, "--analogy", "city0", "animal0", "animal1", "--top-k", "3")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["rank"] for row in rows] == ["1", "2", "3"]
    assert not {row["word"] for row in rows} & {"animal0", "animal1", "city0"}
    assert rows[0]["word"].startswith("city")  # the group of A


def test_analogy_evaluation_counts_skipped_questions(tmp_path):
    from tftrain.models.word2vec_tools import evaluate_analogies

    # Vectors where b - a + c lands exactly on d for the "plural" questions.
    words = ["cat", "cats", "dog", "dogs", "car", "cars", "rare"]
    base = {"cat": [1, 0, 0, 0], "dog": [0, 1, 0, 0], "car": [0, 0, 1, 0]}
    rows = []
    for word in words:
        if word == "rare":
            rows.append([0.5, 0.5, 0.5, 0.5])
        else:
            vector = np.array(base[word.rstrip("s")], dtype=float)
            rows.append(vector + (np.array([0, 0, 0, 1.0]) if word.endswith("s") else 0))
    questions = tmp_path / "questions.txt"
    questions.write_text(
        ": plural\n"
        "cat cats dog dogs\n"
        "dog dogs car cars\n"
        "cat cats zebra zebras\n"  # unknown words: skipped
        ": rare-section\n"
        "Cat Cats rare dog\n"  # known once case-folded; answered wrongly
        "cat cats car cars\n"
    )
    result = evaluate_analogies(np.array(rows), words, questions, top_n=5)
    # Outside the five most frequent words: zebra(s), cars (twice) and rare.
    assert result["analogy_skipped"] == 4
    assert result["analogy_answered"] == 1
    assert result["analogy/plural"] == 1.0
    assert "analogy/rare-section" not in result
    full = evaluate_analogies(np.array(rows), words, questions, top_n=100)
    assert full["analogy_skipped"] == 1
    assert full["analogy_answered"] == 4
    assert full["analogy/plural"] == 1.0
    assert full["analogy/rare-section"] == 0.5
    assert full["analogy_accuracy"] == 0.75
    assert full["analogy_correct"] == 3


def test_corpus_batches_are_deterministic_and_skip_whole_batches(tmp_path):
    from tftrain.config import config_from_dict

    text = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(50)]
    lines = [" ".join(rng.choice(vocabulary, size=12)) for _ in range(400)]
    text.write_text("\n".join(lines) + "\n")
    config = config_from_dict(
        {
            "model": {"type": "word2vec"},
            "data": {"type": "text_corpus", "path": str(text), "min_count": 1, "block_chars": 512},
        }
    )
    from tftrain.registry import build_dataset

    dataset = build_dataset(config)
    spec = dataset.spec()
    assert len(spec.vocabulary) == 50 and sum(spec.extra["counts"]) == 4800

    def batches(**options):
        data = dataset.batches("train", 64, **options)
        return [f["tokens"].numpy() for f, _ in data]

    first, again, other = (batches(shuffle=True, epoch=e) for e in (1, 1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=False))
    skipped = batches(shuffle=True, epoch=1, skip=3)
    assert len(skipped) == len(first) - 3
    assert all(np.array_equal(a, b) for a, b in zip(first[3:], skipped, strict=True))
    # Every batch holds exactly 64 words (the last fewer): every word once per epoch.
    words = [len(b[b >= 0]) for b in first]
    assert set(words[:-1]) == {64} and 0 < words[-1] <= 64
    assert sum(words) == dataset.num_examples("train") == 4800
    # In order, the ids are the text's words with -1 after each line; shuffled, the same
    # lines in another order.
    index = {w: i for i, w in enumerate(spec.vocabulary)}
    expected = [i for line in lines for i in [*(index[w] for w in line.split()), -1]][:-1]
    assert np.concatenate(batches()).tolist() == expected  # (no batch for a last lone -1)
    shuffled = np.concatenate(first).tolist()
    assert shuffled != expected and sentences(shuffled) == sentences(expected)


def sentences(ids: list) -> list:
    text = " ".join(map(str, ids)).split("-1")
    return sorted(line.strip() for line in text if line.strip())


def test_token_ids_drop_unknown_words_and_cut_long_sentences():
    from tftrain.data.word2vec_corpus import token_ids

    index = {"a": 0, "b": 1, "c": 2, "d": 3}
    ids = token_ids("a b zz c\n\nd  a b\tc d\n", index, max_length=3)
    # "a b zz" | "c" | "d a b" | "c d": unknown words count towards the length, then go.
    assert ids.tolist() == [0, 1, -1, 2, -1, 3, 0, 1, -1, 2, 3, -1]


def test_context_windows_stay_in_the_sentence_and_sub_sample():
    import tensorflow as tf

    from tftrain.models.word2vec_sampling import context_windows

    tokens = tf.constant([5, 6, 7, -1, 8, 9, -1, 4], tf.int32)
    centres, contexts = context_windows(tokens, tf.constant([1, 2], tf.int64), window=1)
    assert centres.numpy().tolist() == [5, 6, 7, 8, 9, 4]
    assert contexts.numpy().tolist() == [[-1, 6], [5, 7], [6, -1], [-1, 9], [8, -1], [-1, -1]]
    keep = np.ones(10, np.float32)
    keep[6] = 0.0  # never kept: its neighbours become neighbours
    centres, contexts = context_windows(tokens, tf.constant([1, 2], tf.int64), 1, keep)
    assert centres.numpy().tolist() == [5, 7, 8, 9, 4]
    assert contexts.numpy()[:2].tolist() == [[-1, 7], [5, -1]]


@pytest.mark.slow
def test_ptb_vocabulary_counts():
    path = SHARED_DATA / "ptb" / "ptb.train.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    from tftrain.data.word2vec_corpus import TextCorpus, TextCorpusConfig

    dataset = TextCorpus(TextCorpusConfig(type="text_corpus", path=str(path), min_count=1), seed=0)
    spec = dataset.spec()
    assert len(spec.vocabulary) == 9999  # 10,000 with <eos>, which the file does not hold
    assert spec.extra["corpus_tokens"] == 929589 - 42068  # minus one <eos> per line


@pytest.mark.parametrize("loss", ["nce", "sampled_softmax"])
def test_sampled_losses_equal_tensorflows_for_each_centres_noise_words(loss):
    """Per centre word, the loss equals tf.nn.nce_loss / sampled_softmax_loss given that
    centre's noise words and expected counts (what those functions share per batch)."""
    import tensorflow as tf

    from tftrain.config import config_from_dict
    from tftrain.registry import build_dataset, build_model

    tree = {**TINY, "model": {**TINY["model"], "loss": loss, "negatives": 3}}
    config = config_from_dict(tree)
    dataset = build_dataset(config)
    model = build_model(config, dataset.spec())
    rng = np.random.default_rng(1)
    net = model.network
    for variable in (net.input_vectors, net.output_vectors, net.output_bias):
        variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32))

    features, _ = next(iter(dataset.batches("train", 6)))
    outputs, _ = model.forward(features, training=True)
    centres, contexts = (t.numpy() for t in model.windows(features, training=True))
    noise_seed = tf.random.experimental.stateless_fold_in(features["seed"], 1)
    noise = model.draw_negatives(len(centres), noise_seed).numpy()
    expected_count = np.exp(model.log_expected_count)
    tf_function = tf.nn.nce_loss if loss == "nce" else tf.nn.sampled_softmax_loss

    total, pairs = 0.0, 0
    for centre, context, candidates in zip(centres, contexts, noise, strict=True):
        targets = context[context >= 0].astype(np.int64)
        if not len(targets):
            continue
        pairs += len(targets)
        hidden = tf.gather(net.input_vectors, [centre] * len(targets))
        total += tf.reduce_sum(
            tf_function(
                weights=net.output_vectors,
                biases=net.output_bias,
                labels=targets[:, None],
                inputs=hidden,
                num_sampled=3,
                num_classes=len(model.vocabulary),
                sampled_values=(
                    tf.constant(candidates, tf.int64),
                    tf.constant(expected_count[targets][:, None]),
                    tf.constant(expected_count[candidates]),
                ),
            )
        ).numpy()
    assert pairs == int(outputs["pairs"].numpy()) > 5
    np.testing.assert_allclose(outputs["loss_sum"].numpy(), total, rtol=1e-5)


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_nce_trains_with_per_pair_learning_rate(tmp_path, cli, write_config, architecture):
    """NCE under `gradient: sum` (word2vec's per-pair alpha) recovers the groups."""
    import json

    lr = 0.025 if architecture == "skipgram" else 0.05
    tree = {
        **TINY,
        "model": {**TINY["model"], "loss": "nce", "architecture": architecture},
        "train": {
            **TINY["train"],
            "optimizer": {"name": "sgd", "learning_rate": lr},
            "log_every_steps": 20,
        },
    }
    fit = cli("fit", write_config(tree), "--run-dir", tmp_path / "run")
    assert " words/s" in fit.stderr  # progress counts centre words, as word2vec does
    result = cli("eval", tmp_path / "run", "--split", "valid", "--json", "--quiet")
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert np.isfinite(metrics["loss"]) and metrics["group_purity@5"] >= 0.9


def test_row_update_cap_scales_only_the_gradient_of_frequent_rows():
    import tensorflow as tf

    from tftrain.config import config_from_dict
    from tftrain.registry import build_dataset, build_model

    config = config_from_dict({**TINY, "model": {**TINY["model"], "row_update_cap": 2}})
    model = build_model(config, build_dataset(config).spec())
    table = tf.Variable(np.arange(len(model.vocabulary) * 2, dtype=np.float32).reshape(-1, 2))
    ids = tf.constant([[0, 0, 3], [0, 0, 1]])
    with tf.GradientTape() as tape:
        rows = model.gather(table, ids)
    np.testing.assert_array_equal(rows.numpy(), tf.gather(table, ids).numpy())  # values kept
    gradient = tf.convert_to_tensor(tape.gradient(rows, table)).numpy()
    # Row 0 occurs 4 times: its 4 unit gradients are scaled by 2/4; rows 1 and 3 once each.
    assert gradient[0].tolist() == [2.0, 2.0]
    assert gradient[1].tolist() == gradient[3].tolist() == [1.0, 1.0]
    assert not gradient[2].any()
