"""Using word vectors: analogies, similarity, neighbours, word2vec/projector files, predict.

Everything here works on plain numpy arrays (vectors, a vocabulary in frequency order), so the
same functions score tftrain's vectors and, in the benchmark, gensim's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tftrain.errors import ConfigError, DataError


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def word_index(words: list, *, case_insensitive: bool, limit: int | None = None) -> dict:
    """word -> row among the first `limit` words; with case folding the most frequent wins."""
    words = words[:limit] if limit else words
    index = {}
    for row in range(len(words) - 1, -1, -1):
        index[words[row].lower() if case_insensitive else words[row]] = row
    return index


# --- analogies ----------------------------------------------------------------------------


def read_analogies(path) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """A questions-words.txt file: [(section, [(a, b, c, d), ...]), ...]."""
    sections: list = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read analogy file {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        parts = line.split()
        if len(parts) != 4:
            raise DataError(f"{path}, line {number}: expected four words, got {len(parts)}")
        if not sections:
            sections.append(("questions", []))
        sections[-1][1].append(tuple(parts))
    return sections


def evaluate_analogies(
    vectors, words: list, path, *, top_n: int = 30000, case_insensitive: bool = True
) -> dict:
    """3CosAdd (b - a + c, excluding a, b, c) over the `top_n` most frequent words.

    Questions with a word outside those `top_n` words are counted as skipped, as gensim's
    `evaluate_word_analogies(restrict_vocab=top_n)` does. Returns overall and per-section
    accuracy over the questions answered.
    """
    index = word_index(words, case_insensitive=case_insensitive, limit=top_n)
    unit = unit_rows(np.asarray(vectors)[: min(top_n, len(words))])
    fold = str.lower if case_insensitive else str
    result: dict = {}
    correct_total = answered_total = skipped_total = 0
    for section, questions in read_analogies(path):
        rows = []
        for question in questions:
            ids = [index.get(fold(w)) for w in question]
            if None in ids:
                skipped_total += 1
            else:
                rows.append(ids)
        correct = 0
        if rows:
            ids = np.asarray(rows)
            for start in range(0, len(ids), 512):
                chunk = ids[start : start + 512]
                query = unit[chunk[:, 1]] - unit[chunk[:, 0]] + unit[chunk[:, 2]]
                scores = query @ unit.T
                for column in range(3):
                    scores[np.arange(len(chunk)), chunk[:, column]] = -np.inf
                correct += int(np.sum(np.argmax(scores, axis=1) == chunk[:, 3]))
            result[f"analogy/{section}"] = correct / len(rows)
        correct_total += correct
        answered_total += len(rows)
    result.update(
        analogy_accuracy=correct_total / answered_total if answered_total else math.nan,
        analogy_correct=correct_total,
        analogy_answered=answered_total,
        analogy_skipped=skipped_total,
    )
    return result


# --- similarity and neighbours --------------------------------------------------------------


def evaluate_similarity(vectors, words: list, path, *, case_insensitive: bool = True) -> dict:
    """Spearman correlation of cosine similarity with human scores (`word1 word2 score`)."""
    from scipy.stats import spearmanr

    index = word_index(words, case_insensitive=case_insensitive)
    fold = str.lower if case_insensitive else str
    unit = unit_rows(vectors)
    ours, theirs, skipped = [], [], 0
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            first, second, score = parts[0].strip(), parts[1].strip(), float(parts[2])
        except (IndexError, ValueError):
            raise DataError(
                f"{path}, line {number}: expected 'word1<TAB>word2<TAB>score'"
            ) from None
        a, b = index.get(fold(first)), index.get(fold(second))
        if a is None or b is None:
            skipped += 1
            continue
        ours.append(float(unit[a] @ unit[b]))
        theirs.append(score)
    rho = float(spearmanr(ours, theirs).statistic) if len(ours) > 1 else math.nan
    return {
        "similarity_spearman": rho,
        "similarity_pairs": len(ours),
        "similarity_skipped": skipped,
    }


def nearest(vectors, words: list, word: str, count: int, *, fold: bool = False) -> list:
    """[(word, cosine)] of the `count` nearest words to `word`, itself excluded."""
    index = word_index(words, case_insensitive=fold)
    row = index.get(word.lower() if fold else word)
    if row is None:
        raise ConfigError(f"usage error: {word!r} is not in the vocabulary ({len(words)} words)")
    unit = unit_rows(vectors)
    scores = unit @ unit[row]
    scores[row] = -np.inf
    return [(words[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:count]]


def analogy(vectors, words: list, a: str, b: str, c: str, count: int, *, fold=False) -> list:
    """[(word, cosine)] answering a : b = c : ?, i.e. nearest to b - a + c (a, b, c excluded)."""
    index = word_index(words, case_insensitive=fold)
    rows = []
    for word in (a, b, c):
        row = index.get(word.lower() if fold else word)
        if row is None:
            raise ConfigError(f"usage error: {word!r} is not in the vocabulary")
        rows.append(row)
    unit = unit_rows(vectors)
    query = unit[rows[1]] - unit[rows[0]] + unit[rows[2]]
    scores = unit @ (query / max(np.linalg.norm(query), 1e-12))
    scores[rows] = -np.inf
    return [(words[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:count]]


def group_purity(vectors, words: list, groups: dict, k: int = 5) -> float:
    from tftrain.data.word2vec_corpus import nearest_neighbour_purity

    return nearest_neighbour_purity(vectors, words, groups, k)


def evaluate(model) -> dict:
    """The figures `tftrain eval` adds for a word2vec run, as its config asks."""
    config, words = model.config, model.vocabulary
    vectors = model.vectors()
    fold = config.case_insensitive and model.spec.extra.get("lower", False)
    results: dict = {"vocabulary": len(words)}
    if config.analogies:
        results.update(
            evaluate_analogies(
                vectors,
                words,
                resolve(config.analogies, "model.analogies"),
                top_n=config.analogy_top_n,
                case_insensitive=config.case_insensitive,
            )
        )
    if config.similarities:
        results.update(
            evaluate_similarity(
                vectors,
                words,
                resolve(config.similarities, "model.similarities"),
                case_insensitive=config.case_insensitive,
            )
        )
    groups = model.spec.extra.get("groups")
    if groups:
        results["group_purity@5"] = group_purity(vectors, words, groups, 5)
    for word in config.nearest_words:
        try:
            found = nearest(vectors, words, word, config.nearest_count, fold=fold)
        except ConfigError:
            results[f"nearest/{word}"] = "(not in vocabulary)"
            continue
        results[f"nearest/{word}"] = ", ".join(f"{w} {s:.3f}" for w, s in found)
    return results


def resolve(path_text: str, key: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise ConfigError(f"config error: file not found: {path} (from '{key}')")
    return path


# --- files --------------------------------------------------------------------------------


def save_word2vec_format(path, words: list, vectors, *, binary: bool) -> None:
    """The original word2vec format (text, or binary float32 rows), as gensim reads it."""
    vectors = np.asarray(vectors, dtype=np.float32)
    with open(path, "wb") as handle:
        handle.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, vector in zip(words, vectors, strict=True):
            if binary:
                handle.write(word.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")
            else:
                values = " ".join(f"{v:.9g}" for v in vector)
                handle.write(f"{word} {values}\n".encode())


def load_word2vec_format(path, *, binary: bool) -> tuple[list, np.ndarray]:
    """Read back what `save_word2vec_format` wrote (used to check exports)."""
    with open(path, "rb") as handle:
        count, dim = map(int, handle.readline().split())
        words, rows = [], []
        for _ in range(count):
            if binary:
                word = b""
                while (char := handle.read(1)) != b" ":
                    word += char
                words.append(word.decode("utf-8").lstrip("\n"))
                rows.append(np.frombuffer(handle.read(4 * dim), dtype="<f4"))
                handle.read(1)
            else:
                parts = handle.readline().decode("utf-8").rstrip("\n").split(" ")
                words.append(parts[0])
                rows.append(np.asarray(parts[1:], dtype=np.float32))
    return words, np.vstack(rows)


def write_word2vec(directory: Path, context) -> dict:
    """vectors.txt, or with --binary or `--out NAME.bin` vectors.bin (gensim's convention)."""
    binary = bool(context.options.get("binary") or (context.out and context.out.suffix == ".bin"))
    model = context.model
    name = "vectors.bin" if binary else "vectors.txt"
    vectors = model.vectors()
    save_word2vec_format(directory / name, model.vocabulary, vectors, binary=binary)
    words, loaded = load_word2vec_format(directory / name, binary=binary)
    if words != model.vocabulary:
        raise DataError(f"export check failed: {name} does not give back the vocabulary")
    difference = float(np.max(np.abs(loaded - vectors)))
    return {
        "file": name,
        "binary": binary,
        "words": len(words),
        "dimensions": int(vectors.shape[1]),
        "check_examples": len(words),
        "max_difference": difference,
    }


def write_projector(directory: Path, context) -> dict:
    """vectors.tsv, metadata.tsv (word, count) and projector_config.pbtxt for TensorBoard."""
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    model = context.model
    vectors = model.vectors()
    np.savetxt(directory / "vectors.tsv", vectors, delimiter="\t", fmt="%.6g")
    counts = model.spec.extra.get("counts") or [0] * len(model.vocabulary)
    with open(directory / "metadata.tsv", "w", encoding="utf-8") as handle:
        handle.write("word\tcount\n")
        for word, count in zip(model.vocabulary, counts, strict=True):
            handle.write(f"{word}\t{count}\n")
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "word2vec"
    embedding.tensor_path = "vectors.tsv"
    embedding.metadata_path = "metadata.tsv"
    (directory / "projector_config.pbtxt").write_text(text_format.MessageToString(config))
    loaded = np.loadtxt(directory / "vectors.tsv", delimiter="\t", dtype=np.float32, ndmin=2)
    return {
        "words": len(model.vocabulary),
        "dimensions": int(vectors.shape[1]),
        "check_examples": len(loaded),
        "max_difference": float(np.max(np.abs(loaded - vectors) / (np.abs(vectors) + 1e-6))),
    }


# --- predict ------------------------------------------------------------------------------


def predict(model, request) -> list[dict]:
    """`--nearest WORD` or `--analogy A B C` (A - B + C, as fastText's and gensim's
    king - man + woman); --top-k N (default 10)."""
    count = request["top_k"]
    fold = model.spec.extra.get("lower", False)
    vectors, words = model.vectors(), model.vocabulary
    if request["nearest"]:
        found = nearest(vectors, words, request["nearest"], count, fold=fold)
        query = request["nearest"]
    elif request["analogy"]:
        a, b, c = request["analogy"]
        # analogy(x, y, z) answers x : y = z : ?, the word nearest y - x + z.
        found = analogy(vectors, words, b, a, c, count, fold=fold)
        query = f"{a} - {b} + {c}"
    else:
        raise ConfigError(
            "usage error: word2vec predict needs --nearest WORD or --analogy A B C "
            "(the word nearest A - B + C: king man woman -> queen)"
        )
    return [
        {"query": query, "rank": rank, "word": word, "similarity": round(score, 6)}
        for rank, (word, score) in enumerate(found, start=1)
    ]
