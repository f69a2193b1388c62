"""Plain text: a word corpus (language model or word2vec) or sentence pairs (seq2seq)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from tftrain.errors import ConfigError, DataError
from tftrain.init.proposal import Proposal, Setting
from tftrain.init.sample import (
    COUNT_BYTES,
    SAMPLE_BYTES,
    Column,
    Head,
    count_newlines,
    read_head,
)

SPLIT_NAMES = {"valid": ("valid", "val", "dev", "validation"), "test": ("test",)}


def is_analogy_file(head: Head) -> bool:
    """word2vec's questions-words.txt layout: ': section' lines, then four words a line."""
    lines = [line for line in head.lines[:2000] if line.strip()]
    sections = sum(line.startswith(": ") for line in lines)
    fours = sum(len(line.split()) == 4 for line in lines)
    return sections > 0 and sections + fours == len(lines)


def held_out_files(path: Path) -> dict[str, Path]:
    """Sibling files that differ from `path` by the split word (ptb.train.txt -> ptb.valid.txt)."""
    match = re.search(r"train", path.name)
    if match is None:
        return {}
    found = {}
    for split, words in SPLIT_NAMES.items():
        for word in words:
            sibling = path.with_name(path.name[: match.start()] + word + path.name[match.end() :])
            if sibling.is_file():
                found[split] = sibling
                break
    return found


def corpus_files(folder: Path) -> dict[str, Path]:
    """{train, valid, test} text files of a folder laid out like PTB's, else {}."""
    for train in sorted(folder.glob("*train*")):
        if train.is_file() and not train.name.startswith("."):
            others = held_out_files(train)
            if others:
                return {"train": train, **others}
    return {}


def corpus(path: Path, options, name: str) -> Proposal:
    """A language model when held-out files exist beside the text, else word2vec."""
    files = corpus_files(path) if path.is_dir() else {"train": path, **held_out_files(path)}
    if not files:
        raise ConfigError(f"usage error: {path} holds no *train* text file (ptb.train.txt, ...)")
    head = read_head(files["train"])
    if is_analogy_file(head):
        raise ConfigError(
            f"usage error: {files['train']} holds word2vec analogy questions (': section' "
            f"lines, then four words a line), not training text; a word2vec config reads it "
            f"as model.analogies"
        )
    words = sum(len(line.split()) for line in head.lines)
    if not head.complete:
        words = int(round(words * head.total_lines / max(len(head.lines), 1), -3))
    vocabulary = len({w for line in head.lines for w in line.split()})
    task = options.task or ("language_model" if "valid" in files else "word2vec")
    if task == "language_model" and "valid" not in files:
        raise ConfigError(
            f"usage error: a language model needs held-out text to validate on; put "
            f"{files['train'].name} beside a valid file (ptb.train.txt, ptb.valid.txt, "
            f"ptb.test.txt) or use --task word2vec"
        )
    counted = "words" if head.complete else "words (estimated from the first MiB)"
    facts = [
        f"Read {files['train'].name}: {head.count_text('lines')}, {words:,} {counted}, "
        f"{vocabulary:,} distinct words{'' if head.complete else ' in the sample'}.",
        "Held-out files: "
        + (", ".join(f"{k} {v.name}" for k, v in files.items() if k != "train") or "none")
        + ".",
    ]
    if task == "language_model":
        return language_model(files, head, vocabulary, facts, name)
    if task != "word2vec":
        raise ConfigError(f"usage error: --task {task} does not fit a plain text corpus")
    return word2vec(files, words, facts, name)


def language_model(files, head: Head, vocabulary: int, facts, name: str) -> Proposal:
    folder = files["train"].parent
    size = min(10000, vocabulary + 2) if head.complete else 10000  # + <unk> and <eos>
    return Proposal(
        summary=f"Word-level LSTM language model on {files['train'].name} (perplexity on held-out "
        f"text)",
        name=name,
        task="language_model",
        reason="the text has held-out files beside it, on which perplexity measures the model "
        "(with no held-out text, init proposes word2vec)",
        facts=facts,
        model=[
            Setting("type", "lstm"),
            Setting("task", "language_model"),
            Setting("num_layers", 2),
            Setting("hidden_size", 200, "the PTB tutorial's small model; 650 is its medium"),
            Setting("dropout", 0.2),
        ],
        data=[
            Setting("type", "ptb", "PTB-style files; <eos> ends each line"),
            Setting("path", str(folder)),
            Setting("train_file", files["train"].name),
            Setting("valid_file", files["valid"].name),
            Setting("test_file", files["test"].name if "test" in files else ""),
            Setting("vocab_size", size, "the most frequent words; the rest become <unk>"),
            Setting("num_steps", 20, "words per row per batch (truncated backpropagation)"),
            Setting("lowercase", False),
        ],
        train=[
            Setting("batch_size", 20),
            Setting("epochs", 10),
            Setting("shuffle", False, "rows carry the LSTM state from batch to batch"),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.002}),
            Setting("clip_grad_norm", 5.0),
            Setting("steps_per_loop", 20),
        ],
        eval=[Setting("batch_size", 20)],
    )


def word2vec(files, words: int, facts, name: str) -> Proposal:
    valid = files.get("valid", files["train"])
    return Proposal(
        summary=f"Skip-gram word2vec vectors from {files['train'].name}",
        name=name,
        task="word2vec",
        reason="one text file with no held-out text: word vectors need none (they are judged "
        "by analogies and neighbours), while a language model would need a valid file "
        "(--task language_model)",
        facts=facts,
        model=[
            Setting("type", "word2vec"),
            Setting("architecture", "skipgram", "or cbow"),
            Setting("embedding_size", 100),
            Setting("negatives", 5),
            Setting("analogies", "questions-words.txt", "word2vec's analogy questions", True),
        ],
        data=[
            Setting("type", "text_corpus"),
            Setting("path", str(files["train"])),
            Setting(
                "valid_path",
                str(valid),
                "held-out text"
                if "valid" in files
                else "no held-out file: the loss on the "
                "training text (eval.max_batches caps its cost)",
            ),
            *([Setting("test_path", str(files["test"]))] if "test" in files else []),
            Setting("lower", True),
            Setting("min_count", 5 if words >= 100_000 else 1, "rarer words get no vector"),
            Setting("window", 5),
        ],
        train=[
            Setting("batch_size", 1024 if words >= 100_000 else 64),
            Setting("epochs", 5),
            Setting("optimizer", {"name": "sgd", "learning_rate": 0.025}),
            Setting("schedule", {"type": "linear", "final_fraction": 0.0001}),
            Setting("steps_per_loop", 20),
        ],
        eval=[Setting("max_batches", 100), Setting("final_splits", ["valid"])],
    )


# --- sentence pairs -------------------------------------------------------------------------


def zip_member(path: Path) -> tuple[str, Head]:
    """The only .txt member of a zip (as the sentence_pairs reader picks it) and its start."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".txt") and "/_" not in "/" + n]
            if len(names) != 1:
                raise ConfigError(
                    f"usage error: {path} holds {len(names)} .txt files "
                    f"({', '.join(names[:5])}); unzip the one to use and pass it"
                )
            info = archive.getinfo(names[0])
            with archive.open(info) as handle:
                raw = handle.read(SAMPLE_BYTES)
                counted = SAMPLE_BYTES < info.file_size <= COUNT_BYTES
                lines = raw.count(b"\n") + count_newlines(handle) if counted else 0
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    head = read_head(path, raw, name=f"{path}:{names[0]}", size=info.file_size)
    if lines:
        head = Head(head.lines, head.complete, lines, True)
    return names[0], head


def pairs(path: Path, head: Head, name: str, member: str | None = None) -> Proposal:
    """source<TAB>target[<TAB>...] lines, for the `sentence_pairs` dataset."""
    rows = [line.split("\t") for line in head.lines if line.strip()]
    if not rows or any(len(row) < 2 for row in rows):
        bad = next((n for n, row in enumerate(rows, 1) if len(row) < 2), 1)
        raise ConfigError(
            f"usage error: {path}: line {bad} has no tab; sentence pairs are "
            f"'source<TAB>target' lines"
        )
    source = Column("source", 0, [row[0] for row in rows])
    target = Column("target", 1, [row[1] for row in rows])
    # A sample from the start of a sorted file (as Tatoeba's) is short: allow at least 20 words.
    least = 8 if head.complete else 20
    lengths = [max(least, min(100, c.percentile_words(0.98) + 2)) for c in (source, target)]
    shown = " | ".join(v[:30] for v in (source.present[0], target.present[0]))
    where = f"{path.name}:{member}" if member else path.name
    return Proposal(
        summary=f"Sequence-to-sequence model from column 1 to column 2 of {where}",
        name=name,
        task="seq2seq",
        reason="each line holds two tab-separated sentences and neither looks like a label",
        facts=[
            f"Read {where}: {head.count_text('pairs')}, e.g. {shown!r}.",
            f"98% of sampled sentences have at most {source.percentile_words(0.98)} (source) "
            f"and {target.percentile_words(0.98)} (target) words.",
            *(
                [f"Columns after the second are ignored ({len(rows[0])} in all)."]
                if len(rows[0]) > 2
                else []
            ),
        ],
        model=[
            Setting("type", "seq2seq"),
            Setting("embedding_dim", 128),
            Setting("units", 256),
            Setting("cell", "gru"),
            Setting("attention", "luong"),
            Setting("dropout", 0.2),
            Setting("beam_width", 4),
        ],
        data=[
            Setting("type", "sentence_pairs"),
            Setting("path", str(path)),
            *([Setting("member", member)] if member else []),
            Setting("swap", False, "true: translate the second column into the first"),
            Setting("max_pairs", None, "null: all; e.g. 60000 for the first pairs only"),
            Setting("max_source_length", lengths[0], "words; longer pairs are dropped"),
            Setting("max_target_length", lengths[1]),
            Setting("source_vocab_size", 12000),
            Setting("target_vocab_size", 12000),
            Setting("lowercase", True),
            Setting("valid_fraction", 0.05),
            Setting("test_fraction", 0.05),
        ],
        train=[
            Setting("batch_size", 64),
            Setting("epochs", 10),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.002}),
            Setting("clip_grad_norm", 5.0),
            Setting("steps_per_loop", 20),
        ],
    )
