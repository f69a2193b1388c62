"""The seq2seq network: embeddings, stacked (bi)RNN encoder, RNN decoder and attention.

Attention is computed from each decoder output over the encoder outputs (Luong et al.'s global
attention without input feeding, as in TensorFlow's NMT tutorial), with an additive
(`bahdanau`) or multiplicative (`luong`) score. Because attention does not feed back into the
recurrence, training runs each RNN over whole sequences, and decoding steps the same cells one
token at a time (`decode_step`).
"""

from __future__ import annotations

from tftrain.lazy import keras, tf
from tftrain.preprocessing.text import PAD

NEG_INF = -1e9


def make_network(config, source_size: int, target_size: int):
    """The Keras model holding every variable (defined here so Keras loads lazily)."""

    def recurrent(units, name):
        layer = keras.layers.LSTM if config.cell == "lstm" else keras.layers.GRU
        return layer(units, return_sequences=True, return_state=True, name=name)

    class Seq2SeqNetwork(keras.Model):
        def __init__(self):
            super().__init__(name="seq2seq")
            units, dim = config.units, config.embedding_dim
            self.source_embedding = keras.layers.Embedding(source_size, dim, name="source_embed")
            self.target_embedding = keras.layers.Embedding(target_size, dim, name="target_embed")
            # One attribute per layer: Keras 3 lists of layers are not tf.train.Checkpoint
            # dependencies, so layers kept only in a list would not be saved.
            for i in range(config.num_layers):
                if config.bidirectional:
                    layer = keras.layers.Bidirectional(
                        recurrent(units // 2, f"encoder_{i}"), name=f"encoder_bi_{i}"
                    )
                else:
                    layer = recurrent(units, f"encoder_{i}")
                setattr(self, f"encoder_{i}", layer)
                setattr(self, f"decoder_{i}", recurrent(units, f"decoder_{i}"))
            self.dropout = keras.layers.Dropout(config.dropout)
            self.output_dim = dim if config.tie_embeddings else units
            if config.attention == "luong":
                self.attention_query = keras.layers.Dense(units, use_bias=False, name="luong_w")
            elif config.attention == "bahdanau":
                size = config.attention_units or units
                self.attention_query = keras.layers.Dense(size, use_bias=False, name="bahdanau_w2")
                self.attention_keys = keras.layers.Dense(size, use_bias=False, name="bahdanau_w1")
                self.attention_v = keras.layers.Dense(1, use_bias=False, name="bahdanau_v")
            self.attention_output = None
            if config.attention != "none":
                self.attention_output = keras.layers.Dense(
                    self.output_dim, activation="tanh", use_bias=False, name="attention_out"
                )
            elif self.output_dim != units:
                self.attention_output = keras.layers.Dense(self.output_dim, name="project_out")
            if not config.tie_embeddings:
                self.output_kernel = self.add_weight(
                    shape=(target_size, self.output_dim), name="output_kernel"
                )
            self.output_bias = self.add_weight(
                shape=(target_size,), initializer="zeros", name="output_bias"
            )

        # --- pieces ---

        @property
        def encoder_layers(self):
            return [getattr(self, f"encoder_{i}") for i in range(config.num_layers)]

        @property
        def decoder_layers(self):
            return [getattr(self, f"decoder_{i}") for i in range(config.num_layers)]

        def softmax_weights(self):
            if config.tie_embeddings:
                return self.target_embedding.embeddings
            return self.output_kernel

        def logits(self, hidden):
            # Spell the rank out: the gradient of "...d,vd->...v" is ~30x slower on CPU
            # (37 ms vs 1 ms per step at 64x12x256 with 40 words; minutes at 2,000 words).
            equation = "btd,vd->btv" if hidden.shape.rank == 3 else "bd,vd->bv"
            return tf.einsum(equation, hidden, self.softmax_weights()) + self.output_bias

        def encode(self, source, training=False):
            mask = tf.not_equal(source, PAD)
            x = self.dropout(self.source_embedding(source), training=training)
            states = []
            for layer in self.encoder_layers:
                outputs = layer(x, mask=mask, training=training)
                x, state = outputs[0], list(outputs[1:])
                if config.bidirectional:  # [forward states..., backward states...] -> concat
                    half = len(state) // 2
                    state = [
                        tf.concat([f, b], -1)
                        for f, b in zip(state[:half], state[half:], strict=True)
                    ]
                states.append(state)
                x = self.dropout(x, training=training)
            return x, mask, states

        def attend(self, queries, memory, mask):
            """queries [B, T, U], memory [B, S, U] -> (attentional [B, T, D], weights [B,T,S])."""
            if config.attention == "none":
                hidden = (
                    queries if self.attention_output is None else self.attention_output(queries)
                )
                return hidden, tf.zeros([tf.shape(queries)[0], tf.shape(queries)[1], 0])
            if config.attention == "luong":
                scores = tf.matmul(self.attention_query(queries), memory, transpose_b=True)
            else:
                keys = self.attention_keys(memory)[:, None, :, :]
                query = self.attention_query(queries)[:, :, None, :]
                scores = tf.squeeze(self.attention_v(tf.tanh(keys + query)), -1)
            scores = tf.where(mask[:, None, :], scores, NEG_INF)
            weights = tf.nn.softmax(scores, axis=-1)
            context = tf.matmul(weights, memory)
            return self.attention_output(tf.concat([context, queries], -1)), weights

        def decode(self, target_in, memory, mask, states, training=False):
            """Teacher forcing over whole sequences -> (attentional hidden, attention)."""
            y = self.dropout(self.target_embedding(target_in), training=training)
            for layer, state in zip(self.decoder_layers, states, strict=True):
                y = layer(y, initial_state=state, training=training)[0]
                y = self.dropout(y, training=training)
            return self.attend(y, memory, mask)

        def decode_step(self, tokens, states, memory, mask):
            """One token per row -> (attentional hidden [B, D], new states, attention [B, S])."""
            y = self.target_embedding(tokens)
            new_states = []
            for layer, state in zip(self.decoder_layers, states, strict=True):
                y, state = layer.cell(y, state, training=False)
                new_states.append(list(state))
            hidden, weights = self.attend(y[:, None, :], memory, mask)
            return hidden[:, 0], new_states, weights[:, 0]

        def call(self, features, training=False):
            memory, mask, states = self.encode(features["source"], training=training)
            return self.decode(features["target_in"], memory, mask, states, training=training)

    return Seq2SeqNetwork()
