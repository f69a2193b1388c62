"""Sentence pairs read from files: a TSV (Tatoeba/Anki format, plain or a .zip member) or two
aligned files, one sentence per line."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tftrain.data.archives import read_member
from tftrain.data.base import resolve_file
from tftrain.data.pairs import PairsConfig, PairsDataset
from tftrain.errors import ConfigError, DataError
from tftrain.registry import datasets
from tftrain.schema import FieldError, limits


@dataclass(frozen=True)
class SentencePairsConfig(PairsConfig):
    path: str = ""  # source<TAB>target[<TAB>attribution] lines; .zip: read `member`
    member: str | None = None  # the file inside a .zip (default: its only .txt file)
    source_path: str = ""  # or two aligned files, one sentence per line
    target_path: str = ""
    swap: bool = False  # translate the second column into the first
    max_pairs: int | None = field(default=None, metadata=limits(ge=1))  # first N pairs only
    valid_fraction: float = field(default=0.05, metadata=limits(ge=0, lt=1))
    test_fraction: float = field(default=0.05, metadata=limits(ge=0, lt=1))
    valid_count: int | None = field(default=None, metadata=limits(ge=0))
    test_count: int | None = field(default=None, metadata=limits(ge=0))

    def __post_init__(self):
        super().__post_init__()
        if not self.path and not (self.source_path and self.target_path):
            raise FieldError("path", "set 'path' (a TSV) or both 'source_path' and 'target_path'")
        if self.path and (self.source_path or self.target_path):
            raise FieldError("path", "set either 'path' or 'source_path'/'target_path', not both")


def read_lines(path: Path, member: str | None = None) -> tuple[str, list[str]]:
    """(display name, lines) of a UTF-8 text file or a .zip member; bad bytes name the line."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if member is None:
                    texts = [n for n in names if n.endswith(".txt") and "/_" not in "/" + n]
                    if len(texts) != 1:
                        raise ConfigError(
                            f"config error: {path} holds {len(texts)} .txt files "
                            f"({', '.join(texts[:5])}); set data.member to the one to read"
                        )
                    member = texts[0]
                if member not in names:
                    raise ConfigError(
                        f"config error: {path} has no member {member!r} "
                        f"(members: {', '.join(names[:10])})"
                    )
                raw = read_member(archive, path, member)
            name = f"{path}:{member}"
        else:
            raw = path.read_bytes()
            name = str(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(
                f"{name}, line {number}: invalid UTF-8 (byte 0x{line[error.start]:02x} at "
                f"column {error.start + 1}); convert the file to UTF-8"
            ) from None
    return name, decoded


def check_sentence(text: str, name: str, number: int, what: str) -> str:
    if not text.strip():
        raise DataError(f"{name}, line {number}: empty {what} sentence; remove the line")
    return text


def read_tsv_pairs(path: Path, member: str | None = None) -> list[tuple[str, str]]:
    name, lines = read_lines(path, member)
    pairs = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            what = "an empty line" if not line.strip() else "no tab"
            raise DataError(
                f"{name}, line {number}: expected 'source<TAB>target[<TAB>attribution]', "
                f"found {what}"
            )
        source = check_sentence(fields[0], name, number, "source")
        target = check_sentence(fields[1], name, number, "target")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{name} holds no sentence pairs")
    return pairs


def read_aligned_pairs(source_path: Path, target_path: Path) -> list[tuple[str, str]]:
    source_name, sources = read_lines(source_path)
    target_name, targets = read_lines(target_path)
    if len(sources) != len(targets):
        shorter, longer = (
            (source_name, target_name)
            if len(sources) < len(targets)
            else (target_name, source_name)
        )
        line = min(len(sources), len(targets)) + 1
        raise DataError(
            f"misaligned files: {source_name} has {len(sources)} lines but {target_name} has "
            f"{len(targets)}; line {line} of {longer} has no partner in {shorter}"
        )
    pairs = []
    for number, (source, target) in enumerate(zip(sources, targets, strict=True), start=1):
        check_sentence(source, source_name, number, "source")
        check_sentence(target, target_name, number, "target")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{source_name} holds no sentences")
    return pairs


@datasets.register("sentence_pairs")
class SentencePairs(PairsDataset):
    """Sentence pairs from a TSV (Tatoeba/Anki format, plain or in a .zip) or two aligned files."""

    Config = SentencePairsConfig
    description = "sentence pairs: source<TAB>target file (or .zip member) or two aligned files"

    def raw_splits(self):
        cfg = self.config
        if cfg.path:
            pairs = read_tsv_pairs(resolve_file(cfg.path, "data.path"), cfg.member)
        else:
            pairs = read_aligned_pairs(
                resolve_file(cfg.source_path, "data.source_path"),
                resolve_file(cfg.target_path, "data.target_path"),
            )
        if cfg.max_pairs:
            pairs = pairs[: cfg.max_pairs]
        if cfg.swap:
            pairs = [(t, s) for s, t in pairs]
        order = np.random.default_rng(self.seed).permutation(len(pairs))
        test = (
            cfg.test_count if cfg.test_count is not None else round(len(pairs) * cfg.test_fraction)
        )
        valid = (
            cfg.valid_count
            if cfg.valid_count is not None
            else round(len(pairs) * cfg.valid_fraction)
        )
        if test + valid >= len(pairs):
            raise ConfigError(
                f"config error: valid ({valid}) and test ({test}) pairs leave no training pairs "
                f"out of {len(pairs)}"
            )
        # Held-out pairs are taken at random; training keeps the file's order (then shuffled
        # per epoch by `batches`).
        held_test, held_valid = order[:test], order[test : test + valid]
        train = np.sort(order[test + valid :])
        return {
            "train": [pairs[i] for i in train],
            "valid": [pairs[i] for i in held_valid],
            "test": [pairs[i] for i in held_test],
        }
