"""The Keras networks of the `lstm` family: the PTB language model and the sequence model.

The language model (Zaremba et al., 2014; the TensorFlow PTB tutorial) is embedding -> stacked
LSTM/GRU -> softmax over the vocabulary, with dropout on the non-recurrent connections only and
weights uniform in [-init_scale, init_scale]; it takes and returns its state so the loop can
carry it across batches. The sequence model maps a sequence of vectors, or of token ids (0 is
padding, masked), to class logits or regression outputs.
"""

from __future__ import annotations

import numpy as np

from tftrain.errors import ConfigError
from tftrain.lazy import keras, tf
from tftrain.models.text_networks import token_embedding


def initializer(config):
    """Uniform in [-init_scale, init_scale] (the tutorial's), or Keras' default."""
    if config.init_scale is None:
        return None
    return keras.initializers.RandomUniform(-config.init_scale, config.init_scale)


def recurrent_layer(config, units: int, *, return_sequences: bool, return_state: bool, name):
    """One LSTM or GRU layer in Keras' fast (cuDNN-compatible) configuration."""
    init = initializer(config)
    options = dict(
        return_sequences=return_sequences,
        return_state=return_state,
        recurrent_dropout=config.recurrent_dropout,
        unroll=config.unroll,
        name=name,
    )
    if init is not None:
        options.update(kernel_initializer=init, recurrent_initializer=init)
    if config.cell == "lstm":
        return keras.layers.LSTM(units, unit_forget_bias=config.unit_forget_bias, **options)
    return keras.layers.GRU(units, **options)


def language_model_network(config, vocab: int, zero_state):
    """Embedding -> stacked RNN -> logits, taking and returning the state."""
    embedding_size = config.embedding_size or config.hidden_size

    class LanguageModel(keras.Model):
        def __init__(self):
            super().__init__(name="lstm_language_model")
            init = initializer(config)
            self.embedding = keras.layers.Embedding(
                vocab,
                embedding_size,
                embeddings_initializer=init or "uniform",
                name="embedding",
            )
            # One attribute per layer: tf.train.Checkpoint does not see into plain lists.
            for i in range(config.num_layers):
                layer = recurrent_layer(
                    config,
                    config.hidden_size,
                    return_sequences=True,
                    return_state=True,
                    name=f"rnn_{i}",
                )
                setattr(self, f"rnn_{i}", layer)
            for i in range(config.num_layers + 1):
                setattr(self, f"dropout_{i}", keras.layers.Dropout(config.dropout))
            self.rnns = [getattr(self, f"rnn_{i}") for i in range(config.num_layers)]
            self.drops = [getattr(self, f"dropout_{i}") for i in range(config.num_layers + 1)]
            self.projection = None
            if config.tie_embeddings and embedding_size != config.hidden_size:
                self.projection = keras.layers.Dense(
                    embedding_size, use_bias=False, name="projection"
                )
            if config.tie_embeddings:
                self.softmax = None
                self.softmax_bias = self.add_weight(
                    shape=(vocab,), initializer="zeros", name="softmax_bias"
                )
            else:
                self.softmax = keras.layers.Dense(
                    vocab, kernel_initializer=init or "glorot_uniform", name="softmax"
                )

        @property
        def _default_save_signature(self):
            return None  # the serving signatures are tftrain's (ids + state)

        def call(self, ids, states, training=False):
            x = self.embedding(ids)
            if config.dropout:
                x = self.drops[0](x, training=training)
            new_states = []
            for index, rnn in enumerate(self.rnns):
                outputs = rnn(x, initial_state=list(states[index]), training=training)
                x = outputs[0]
                new_states.append(tuple(outputs[1:]))
                if config.dropout:
                    x = self.drops[index + 1](x, training=training)
            if self.softmax is not None:
                logits = self.softmax(x)
            else:
                if self.projection is not None:
                    x = self.projection(x)
                logits = tf.einsum("btd,vd->btv", x, self.embedding.embeddings)
                logits = logits + self.softmax_bias
            return logits, tuple(new_states)

    network = LanguageModel()
    network(tf.zeros([1, 1], tf.int32), zero_state(1))  # create every variable
    return network


def sequence_network(config, spec, *, task: str, tokens: bool):
    """Sequence of vectors or token ids -> logits (classification) or values (regression)."""
    shape = tuple(spec.input_shape)
    layers = [keras.Input(shape)]
    if tokens:
        vocab = len(spec.vocabulary) if spec.vocabulary else config.vocab_size
        if not vocab:
            raise ConfigError("config error: token inputs need a vocabulary; set model.vocab_size")
        layers.append(keras.layers.Lambda(lambda x: tf.cast(x, tf.int32), name="token_ids"))
        layers.append(token_embedding(config, vocab, mask_zero=True))
    elif len(shape) == 1:
        layers.append(keras.layers.Reshape((shape[0], 1), name="steps"))
    elif len(shape) > 2:  # MNIST (28, 28, 1) -> 28 steps of 28 features
        layers.append(keras.layers.Reshape((shape[0], int(np.prod(shape[1:]))), name="steps"))
    for index in range(config.num_layers):
        last = index == config.num_layers - 1
        layer = recurrent_layer(
            config,
            config.hidden_size,
            return_sequences=not last,
            return_state=False,
            name=f"rnn_{index}",
        )
        if config.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_rnn_{index}")
        layers.append(layer)
        if config.dropout:
            layers.append(keras.layers.Dropout(config.dropout, name=f"dropout_{index}"))
    classify = task == "classification"
    units = spec.num_classes if classify else (spec.output_dim or 1)
    layers.append(keras.layers.Dense(units, name="logits" if classify else "out"))
    target = spec.extra.get("target_transform") if not classify else None
    if target:  # the layer learns normalised targets; the model answers in the data's units
        scale = 1.0 / np.asarray(target["scale"], np.float32)
        offset = np.asarray(target["shift"], np.float32)
        layers.append(keras.layers.Rescaling(scale, offset=offset, name="to_data_units"))
    return keras.Sequential(layers, name=f"lstm_{'classify' if classify else 'regress'}")
