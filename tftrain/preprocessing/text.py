"""Text -> tokens -> ids, in `tf.strings` ops so the exported graph tokenises as training did.

Vocabularies come from the training split only: the special tokens first, then every token
seen at least `min_count` times, most frequent first (ties alphabetical), capped at `size`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tftrain.lazy import tf

# Ids of the special tokens in a sentence-pair vocabulary: padding, unknown, start, end.
PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
SPACE = "\u2581"  # stands for a space in character-level token sequences
PUNCTUATION = r"([\pP\pS])"


def tokenize(texts, *, lowercase: bool, split_punctuation: bool, characters: bool = False):
    """A 1-D string tensor -> a RaggedTensor of token strings."""
    texts = tf.strings.strip(tf.strings.regex_replace(texts, r"\s+", " "))
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    if characters:
        texts = tf.strings.regex_replace(texts, " ", SPACE)
        return tf.strings.unicode_split(texts, "UTF-8")
    if split_punctuation:
        texts = tf.strings.regex_replace(texts, PUNCTUATION, r" \1 ")
    return tf.strings.split(texts)


def tokenize_texts(
    texts: list[str], *, lowercase: bool, split_punctuation: bool, characters: bool = False
) -> list[list[str]]:
    """Python strings -> token lists, through `tokenize` in chunks (the same ops as serving)."""
    tokens = []
    for start in range(0, len(texts), 20000):
        ragged = tokenize(
            tf.constant(texts[start : start + 20000]),
            lowercase=lowercase,
            split_punctuation=split_punctuation,
            characters=characters,
        )
        tokens += [[t.decode("utf-8") for t in row] for row in ragged.to_list()]
    return tokens


def join_tokens(tokens: list[str], characters: bool) -> str:
    """Tokens -> text: characters are concatenated, words joined by spaces."""
    if characters:
        return "".join(tokens).replace(SPACE, " ")
    return " ".join(tokens)


def build_vocabulary(
    sentences: Iterable[list[str]], *, size: int | None, min_count: int, specials: list[str]
) -> list[str]:
    """`specials`, then tokens seen at least `min_count` times, most frequent first."""
    counts = Counter(token for sentence in sentences for token in sentence)
    for special in specials:
        counts.pop(special, None)
    ranked = sorted(
        (token for token, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t)
    )
    if size is not None:
        ranked = ranked[: max(size - len(specials), 0)]
    return list(specials) + ranked


def pad_ids(sentences: list[list[str]], vocabulary: list[str], *, unknown: int, length: int):
    """Token lists -> int32 [len(sentences), length] ids: truncated, padded with 0."""
    import numpy as np

    index = {token: i for i, token in enumerate(vocabulary)}
    ids = np.zeros((len(sentences), length), np.int32)
    for row, sentence in enumerate(sentences):
        values = [index.get(token, unknown) for token in sentence[:length]]
        ids[row, : len(values)] = values
    return ids


def vocabulary_table(vocabulary: list[str], *, unknown: int):
    """A token -> id lookup table (unknown tokens -> `unknown`) for use inside graphs."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)
        ),
        default_value=tf.constant(unknown, tf.int64),
    )


def texts_to_ids(texts, table, *, lowercase: bool, split_punctuation: bool, length: int):
    """A 1-D string tensor -> int32 [batch, length] ids, exactly as `pad_ids` lays them out."""
    tokens = tokenize(texts, lowercase=lowercase, split_punctuation=split_punctuation)
    ids = tf.ragged.map_flat_values(table.lookup, tokens)
    return tf.cast(ids.to_tensor(default_value=0, shape=[None, length]), tf.int32)
