"""Which kind of input a path is, and the config for it (with the user's pinned choices)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tftrain.errors import ConfigError
from tftrain.init import arrays, corpus, folders, series, tables
from tftrain.init.proposal import Proposal, render
from tftrain.init.sample import read_head

# The models each task can train; the first is init's choice.
MODELS = {
    "classification": ("softmax", "cnn", "lstm"),
    "regression": ("linear", "lstm"),
    "text_classification": ("lstm", "cnn"),
    "forecasting": ("lstm",),
    "language_model": ("lstm",),
    "word2vec": ("word2vec",),
    "seq2seq": ("seq2seq",),
}


@dataclass(frozen=True)
class Options:
    """What the user pinned on the command line; None means "guess"."""

    task: str | None = None
    label: str | None = None
    text: str | None = None
    time: str | None = None
    model: str | None = None


def propose(path: Path, options: Options) -> Proposal:
    """Look at `path` and decide what to train on it."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", path.name.split(".")[0]).strip("_") or "data"
    if path.is_dir():
        if arrays.idx_files(path):
            return arrays.idx_proposal(path, options, name)
        kind = folders.folder_kind(path)
        if kind == "images":
            return folders.images(path, options, name)
        if kind == "texts":
            return folders.texts(path, options, name)
        if corpus.corpus_files(path):
            return corpus.corpus(path, options, name)
        raise ConfigError(
            f"usage error: cannot tell what {path} holds; init reads a folder of class "
            f"sub-folders (images or .txt files), of MNIST IDX files, or of PTB-style "
            f"train/valid/test text files"
        )
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return arrays.npz_proposal(path, options, name)
    if arrays.is_idx_file(path):
        return arrays.idx_proposal(path.parent, options, path.parent.name)
    if suffix == ".zip":
        member, head = corpus.zip_member(path)
        return corpus.pairs(path, head, name, member)
    head = read_head(path)
    table = tables.read_table(path, head)
    if table is None or len(table.columns) < 2:
        if options.task in (None, "language_model", "word2vec"):
            return corpus.corpus(path, options, name)
        raise ConfigError(f"usage error: --task {options.task}: {path} is not a CSV/TSV table")
    task = options.task or tables.guess_task(table, options)
    if task in ("classification", "regression"):
        return tables.tabular(table, options, task, name)
    if task == "text_classification":
        return tables.text_classification(table, options, name)
    if task == "forecasting":
        return series.forecasting(table, options, name)
    if task == "seq2seq":
        return corpus.pairs(path, head, name)
    return corpus.corpus(path, options, name)


def make_config(data: str, **pinned) -> str:
    """The config text for `data` (a file or folder); `pinned` as `Options`' fields."""
    options = Options(**pinned)
    path = Path(data).expanduser().absolute()  # the config then runs from anywhere
    if not path.exists():
        raise ConfigError(f"usage error: no such file or folder: {data}")
    if options.model and options.task and options.model not in MODELS[options.task]:
        raise ConfigError(
            f"usage error: --model {options.model} does not fit --task {options.task}; "
            f"choose from {', '.join(MODELS[options.task])}"
        )
    proposal = propose(path, options)
    written = next(s.value for s in proposal.model if s.key == "type")
    if options.model and options.model != written:
        raise ConfigError(
            f"usage error: --model {options.model} does not fit {proposal.task} on {path.name} "
            f"(init writes {written}; --task changes the task)"
        )
    flags = [f"--{k} {shlex.quote(v)}" for k, v in pinned.items() if v]
    return render(proposal, " ".join(["tftrain init", shlex.quote(data), *flags]))
