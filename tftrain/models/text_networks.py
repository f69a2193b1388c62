"""Token embeddings (optionally from word2vec) and Kim's (2014) convolutional text classifier.

`model.embeddings: {from: RUN_DIR | vectors.txt | vectors.bin, trainable: false}` starts the
embedding matrix from a tftrain word2vec run or a word2vec-format file: rows of vocabulary
words found there (exactly, else lower-cased) take those vectors, the rest stay random, and
the padding row is zero. The width is the vectors' width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tftrain.errors import ConfigError
from tftrain.lazy import keras, tf
from tftrain.schema import FieldError

EMBEDDING_KEYS = {"from", "trainable"}


def check_embeddings(embeddings) -> None:
    """Validate `model.embeddings` in a config's __post_init__."""
    if embeddings is None:
        return
    unknown = set(embeddings) - EMBEDDING_KEYS
    if unknown:
        raise FieldError("embeddings", f"unknown keys {sorted(unknown)}; use from, trainable")
    if not isinstance(embeddings.get("from"), str) or not embeddings["from"]:
        raise FieldError("embeddings", "needs from: a word2vec run directory or vectors file")
    if not isinstance(embeddings.get("trainable", False), bool):
        raise FieldError("embeddings", "trainable must be true or false")


def embeddings_source(embeddings) -> Path:
    path = Path(embeddings["from"]).expanduser()
    if not path.exists():
        raise ConfigError(
            f"config error: 'model.embeddings.from' not found: {path}; give a tftrain word2vec "
            f"run directory or a word2vec-format vectors file (.txt or .bin)"
        )
    return path


def source_width(embeddings) -> int:
    """The vectors' width, read cheaply (a file's header line, a run's config)."""
    path = embeddings_source(embeddings)
    if path.is_dir():
        from tftrain.config import load_config

        if not (path / "config.yaml").exists():
            raise ConfigError(f"config error: 'model.embeddings.from' {path} is not a run")
        model = load_config(path / "config.yaml").model
        if model.type != "word2vec":
            raise ConfigError(
                f"config error: 'model.embeddings.from' {path} is a {model.type} run; "
                f"give a word2vec run"
            )
        return model.embedding_size
    with open(path, "rb") as handle:
        header = handle.readline().split()
    if len(header) != 2 or not all(part.isdigit() for part in header):
        raise ConfigError(
            f"config error: {path} is not in word2vec format (first line: count and width)"
        )
    return int(header[1])


def embedding_width(config) -> int:
    """Embedding width: the pretrained vectors', else embedding_dim / embedding_size."""
    if config.embeddings:
        width = source_width(config.embeddings)
        chosen = getattr(config, "embedding_dim", None)
        if chosen and chosen != width:
            raise ConfigError(
                f"config error: 'model.embedding_dim' is {chosen} but the vectors in "
                f"{config.embeddings['from']} have {width}; remove embedding_dim"
            )
        return width
    return (
        getattr(config, "embedding_dim", None)
        or getattr(config, "embedding_size", None)
        or config.hidden_size
    )


def load_vectors(embeddings) -> tuple[list[str], np.ndarray]:
    """(words, vectors) from a word2vec run or a word2vec-format file."""
    path = embeddings_source(embeddings)
    if path.is_dir():
        from tftrain.runners.restore import restore_run

        model = restore_run(path).model
        return list(model.spec.vocabulary), model.vectors()
    from tftrain.models.word2vec_tools import load_word2vec_format

    try:
        return load_word2vec_format(path, binary=path.suffix == ".bin")
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"config error: cannot read word vectors from {path}: {error}") from None


def pretrained_matrix(layer, vocabulary: list[str], embeddings) -> str:
    """Copy found vectors into an Embedding layer's matrix; returns what was found."""
    words, vectors = load_vectors(embeddings)
    index = {word: i for i, word in enumerate(words)}
    lowered = {}
    for i, word in enumerate(words):
        lowered.setdefault(word.lower(), i)
    matrix = np.array(layer.embeddings.numpy())
    found = 0
    for row, word in enumerate(vocabulary[2:], start=2):  # 0 = <pad>, 1 = out-of-vocabulary
        source = index.get(word, lowered.get(word.lower()))
        if source is not None:
            matrix[row] = vectors[source]
            found += 1
    matrix[0] = 0.0
    layer.embeddings.assign(matrix)
    total = len(vocabulary) - 2
    return (
        f"embeddings: {found} of {total} vocabulary words found in {embeddings['from']} "
        f"({100 * found / max(total, 1):.1f}%; the rest start random, "
        f"{'trainable' if embeddings.get('trainable') else 'frozen'})"
    )


def token_embedding(config, vocabulary_size: int, *, mask_zero: bool):
    """The Embedding layer of a text classifier (frozen when pretrained and not trainable)."""
    trainable = not config.embeddings or bool(config.embeddings.get("trainable", False))
    return keras.layers.Embedding(
        vocabulary_size,
        embedding_width(config),
        mask_zero=mask_zero,
        trainable=trainable,
        name="embedding",
    )


def initialize_embeddings(network, spec, config) -> str | None:
    """Load pretrained vectors into the network's embedding layer (fresh runs only)."""
    if not config.embeddings:
        return None
    return pretrained_matrix(network.get_layer("embedding"), spec.vocabulary, config.embeddings)


def kim_network(config, spec):
    """Kim (2014): embeddings -> parallel Conv1D (widths filter_sizes) -> max over time ->
    concatenate -> dropout -> logits."""
    length = spec.input_shape[0]
    too_wide = [w for w in config.filter_sizes if w > length]
    if too_wide:
        raise ConfigError(
            f"config error: 'model.filter_sizes' {too_wide} exceed data.max_length ({length})"
        )
    ids = keras.Input((length,), name="ids")
    tokens = keras.layers.Lambda(lambda x: tf.cast(x, tf.int32), name="token_ids")(ids)
    embedded = token_embedding(config, len(spec.vocabulary), mask_zero=False)(tokens)
    pooled = []
    for width in config.filter_sizes:
        conv = keras.layers.Conv1D(
            config.num_filters, width, activation="relu", name=f"conv_{width}"
        )(embedded)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_over_time_{width}")(conv))
    features = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="concat")(pooled)
    if config.dropout:
        features = keras.layers.Dropout(config.dropout, name="dropout")(features)
    logits = keras.layers.Dense(spec.num_classes, name="logits")(features)
    return keras.Model(ids, logits, name="kim2014")
