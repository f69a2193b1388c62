"""Encoder-decoder with attention: teacher-forced training, greedy and beam search in TensorFlow.

The encoder is stacked (optionally bidirectional) LSTM or GRU layers over source embeddings;
decoder layer i starts from encoder layer i's final state. Attention is computed from each
decoder output over the encoder outputs (Luong et al.'s global attention, without input
feeding, as in TensorFlow's current NMT tutorial), with an additive (`bahdanau`) or
multiplicative (`luong`) score; the attentional vector tanh(W[context; output]) feeds the
softmax. Because attention does not feed back into the recurrence, training runs each RNN over
the whole sequence at once, and decoding steps the very same cells one token at a time.

The exported signature maps raw source strings to target strings: tokenisation
(`tftrain.data.pairs.tokenize`), vocabulary lookups (`tf.lookup.StaticHashTable`), decoding and
detokenisation all run inside the graph.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

from tftrain.data.base import DataSpec
from tftrain.data.pairs import BOS, EOS, PAD, SPACE, UNK, join_tokens, tokenize
from tftrain.errors import ConfigError
from tftrain.lazy import keras, tf
from tftrain.models.base import Model, ModelConfig, PredictRequest
from tftrain.registry import models
from tftrain.schema import FieldError, limits

NEG_INF = -1e9


@dataclass(frozen=True)
class Seq2SeqConfig(ModelConfig):
    embedding_dim: int = field(default=128, metadata=limits(ge=1))
    units: int = field(default=256, metadata=limits(ge=1))
    num_layers: int = field(default=1, metadata=limits(ge=1))
    cell: Literal["lstm", "gru"] = "lstm"
    bidirectional: bool = False  # each direction gets units / 2, concatenated
    attention: Literal["bahdanau", "luong", "none"] = "luong"
    attention_units: int | None = field(default=None, metadata=limits(ge=1))  # bahdanau; =units
    dropout: float = field(default=0.0, metadata=limits(ge=0, lt=1))
    tie_embeddings: bool = False  # the softmax reuses the target embedding matrix
    loss: Literal["softmax", "sampled_softmax"] = "softmax"
    num_sampled: int = field(default=512, metadata=limits(ge=1))  # sampled_softmax only
    beam_width: int = field(default=1, metadata=limits(ge=1))  # 1: greedy
    length_penalty: float = field(default=0.0, metadata=limits(ge=0))  # GNMT alpha
    max_decode_length: int = field(default=60, metadata=limits(ge=1))
    decode_batch_size: int = field(default=256, metadata=limits(ge=1))

    def __post_init__(self):
        if self.bidirectional and self.units % 2:
            raise FieldError("units", f"must be even with bidirectional: true, got {self.units}")


def make_network(config: Seq2SeqConfig, source_size: int, target_size: int):
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
            return tf.einsum("...d,vd->...v", hidden, self.softmax_weights()) + self.output_bias

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


@models.register("seq2seq")
class Seq2Seq(Model):
    """Encoder-decoder with attention, sampled softmax, greedy/beam decoding, strings export."""

    Config = Seq2SeqConfig
    description = "encoder-decoder with attention (bahdanau/luong), beam search, BLEU"
    higher_is_better = frozenset({"accuracy", "bleu", "exact_match"})

    def __init__(self, config, spec: DataSpec):
        if spec.task != "seq2seq":
            raise ConfigError(
                f"config error: model 'seq2seq' needs sentence pairs (data.type: sentence_pairs "
                f"or synthetic_pairs), but this data is {spec.task}"
            )
        self.source_vocabulary = spec.extra["source_vocabulary"]
        self.target_vocabulary = spec.extra["target_vocabulary"]
        super().__init__(config, spec)

    def build(self):
        network = make_network(
            self.config, len(self.source_vocabulary), len(self.target_vocabulary)
        )
        dummy = tf.ones([1, 2], tf.int32)
        network({"source": dummy, "target_in": dummy})  # creates every variable
        # Lookup tables hang off the network so SavedModel tracks them as resources.
        network.source_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.source_vocabulary), tf.range(len(self.source_vocabulary))
            ),
            default_value=UNK,
        )
        return network

    # --- training ---

    def forward(self, features, *, training: bool, state=()):
        hidden, attention = self.network(features, training=training)
        sampled = training and self.config.loss == "sampled_softmax"
        return {"hidden": hidden, "attention": attention, "sampled": sampled}, state

    def losses_and_metrics(self, labels, outputs) -> dict:
        labels = tf.cast(labels, tf.int32)
        mask = tf.not_equal(labels, PAD)
        count = tf.reduce_sum(tf.cast(mask, tf.float32))
        if outputs["sampled"]:
            size = len(self.target_vocabulary)
            losses = tf.nn.sampled_softmax_loss(
                weights=self.network.softmax_weights(),
                biases=self.network.output_bias,
                labels=tf.cast(tf.boolean_mask(labels, mask), tf.int64)[:, None],
                inputs=tf.boolean_mask(outputs["hidden"], mask),
                num_sampled=min(self.config.num_sampled, size - 1),
                num_classes=size,
            )
            # Per-token accuracy needs the full softmax; it is measured on evaluation only.
            return {"loss": (tf.reduce_sum(losses), count), "accuracy": (0.0, 0.0)}
        logits = self.network.logits(outputs["hidden"])
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        weights = tf.cast(mask, losses.dtype)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return {
            "loss": (tf.reduce_sum(losses * weights), count),
            "accuracy": (tf.reduce_sum(correct * weights), count),
        }

    # --- decoding (plain TensorFlow, traced by tf.function) ---

    def decode_ids(self, source, beam_width: int):
        """Source ids [B, S] -> target ids [B, T], </s> then <pad> after the end."""
        memory, mask, states = self.network.encode(source)
        if beam_width == 1:
            return self.greedy(memory, mask, states)
        return self.beam_search(memory, mask, states, beam_width)

    def greedy(self, memory, mask, states):
        batch = tf.shape(memory)[0]
        flat = tf.nest.flatten(states)

        def body(step, tokens, finished, output, *flat):
            states = tf.nest.pack_sequence_as(self._state_structure(), list(flat))
            hidden, states, _ = self.network.decode_step(tokens, states, memory, mask)
            best = tf.argmax(self.network.logits(hidden), -1, output_type=tf.int32)
            best = tf.where(finished, PAD, best)
            output = tf.concat([output, best[:, None]], 1)
            finished = finished | tf.equal(best, EOS)
            return (step + 1, best, finished, output, *tf.nest.flatten(states))

        def more(step, tokens, finished, output, *flat):
            return (step < self.config.max_decode_length) & ~tf.reduce_all(finished)

        start = (
            tf.constant(0),
            tf.fill([batch], BOS),
            tf.zeros([batch], tf.bool),
            tf.zeros([batch, 0], tf.int32),
            *flat,
        )
        invariants = (
            tf.TensorShape([]),
            tf.TensorShape([None]),
            tf.TensorShape([None]),
            tf.TensorShape([None, None]),
            *[tf.TensorShape([None, s.shape[-1]]) for s in flat],
        )
        result = tf.while_loop(more, body, start, shape_invariants=invariants)
        return result[3]

    def _state_structure(self):
        per_layer = 2 if self.config.cell == "lstm" else 1
        return [[0] * per_layer for _ in range(self.config.num_layers)]

    def beam_search(self, memory, mask, states, width: int):
        """Beam search with the GNMT length penalty ((5 + length) / 6) ** alpha."""
        batch = tf.shape(memory)[0]
        size = len(self.target_vocabulary)
        alpha = self.config.length_penalty

        def tile(x):
            return tf.repeat(x, width, axis=0)  # row b*width + k is beam k of example b

        memory, mask = tile(memory), tile(mask)
        flat = [tile(s) for s in tf.nest.flatten(states)]
        pad_only = tf.one_hot(PAD, size, on_value=0.0, off_value=NEG_INF)

        def penalty(lengths):
            return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)

        def body(step, tokens, log_probs, lengths, finished, sequences, *flat):
            states = tf.nest.pack_sequence_as(self._state_structure(), list(flat))
            hidden, states, _ = self.network.decode_step(tokens, states, memory, mask)
            step_log_probs = tf.nn.log_softmax(self.network.logits(hidden))
            step_log_probs = tf.reshape(step_log_probs, [batch, width, size])
            # A finished hypothesis can only continue with <pad>, at no cost.
            step_log_probs = tf.where(finished[:, :, None], pad_only, step_log_probs)
            total = log_probs[:, :, None] + step_log_probs
            new_lengths = lengths + tf.cast(~finished, tf.int32)
            scores = total / penalty(new_lengths)[:, :, None]
            _, best = tf.math.top_k(tf.reshape(scores, [batch, width * size]), k=width)
            beam, token = best // size, best % size
            rows = tf.reshape(beam + tf.range(batch)[:, None] * width, [-1])
            log_probs = tf.gather(tf.reshape(total, [batch, width * size]), best, batch_dims=1)
            lengths = tf.gather(new_lengths, beam, batch_dims=1)
            finished = tf.gather(finished, beam, batch_dims=1) | tf.equal(token, EOS)
            tokens = tf.reshape(token, [-1])
            sequences = tf.concat([tf.gather(sequences, rows), tokens[:, None]], 1)
            flat = [tf.gather(s, rows) for s in tf.nest.flatten(states)]
            return (step + 1, tokens, log_probs, lengths, finished, sequences, *flat)

        def more(step, tokens, log_probs, lengths, finished, sequences, *flat):
            return (step < self.config.max_decode_length) & ~tf.reduce_all(finished)

        first = tf.concat([[0.0], tf.fill([width - 1], NEG_INF)], 0)  # one live beam at first
        start = (
            tf.constant(0),
            tf.fill([batch * width], BOS),
            tf.tile(first[None], [batch, 1]),
            tf.zeros([batch, width], tf.int32),
            tf.zeros([batch, width], tf.bool),
            tf.zeros([batch * width, 0], tf.int32),
            *flat,
        )
        invariants = (
            tf.TensorShape([]),
            tf.TensorShape([None]),
            tf.TensorShape([None, width]),
            tf.TensorShape([None, width]),
            tf.TensorShape([None, width]),
            tf.TensorShape([None, None]),
            *[tf.TensorShape([None, s.shape[-1]]) for s in flat],
        )
        result = tf.while_loop(more, body, start, shape_invariants=invariants)
        log_probs, lengths, sequences = result[2], result[3], result[5]
        best = tf.argmax(log_probs / penalty(lengths), -1, output_type=tf.int32)
        sequences = tf.reshape(sequences, [batch, width, -1])
        return tf.gather(sequences, best, batch_dims=1)

    @functools.cache  # noqa: B019  (one traced decoder per beam width, for the model's life)
    def id_decoder(self, beam_width: int):
        return tf.function(
            lambda source: self.decode_ids(source, beam_width),
            input_signature=[tf.TensorSpec([None, None], tf.int32)],
        )

    # --- strings in, strings out ---

    def _characters(self, side: str) -> bool:
        return self.spec.extra[f"{side}_tokens"] == "characters"

    def text_to_ids(self, texts):
        tokens = tokenize(
            texts,
            lowercase=self.spec.extra["lowercase"],
            split_punctuation=self.spec.extra["split_punctuation"],
            characters=self._characters("source"),
        )
        ids = tf.ragged.map_flat_values(self.network.source_table.lookup, tokens)
        ids = ids.to_tensor(default_value=PAD)
        # A trailing <pad> column keeps empty inputs decodable (masked out by the encoder).
        return tf.concat([ids, tf.zeros([tf.shape(ids)[0], 1], ids.dtype)], 1)

    def ids_to_text(self, ids):
        ended = tf.cumsum(tf.cast(tf.equal(ids, EOS) | tf.equal(ids, PAD), tf.int32), axis=1)
        lengths = tf.reduce_sum(tf.cast(tf.equal(ended, 0), tf.int32), axis=1)
        ragged = tf.RaggedTensor.from_tensor(ids, lengths=lengths)
        vocabulary = tf.constant(self.target_vocabulary)
        words = tf.ragged.map_flat_values(lambda i: tf.gather(vocabulary, i), ragged)
        if self._characters("target"):
            return tf.strings.regex_replace(tf.strings.reduce_join(words, axis=1), SPACE, " ")
        return tf.strings.reduce_join(words, axis=1, separator=" ")

    def translate(self, source, beam_width: int | None = None) -> dict:
        width = beam_width or self.config.beam_width
        ids = self.decode_ids(self.text_to_ids(source), width)
        return {"translation": self.ids_to_text(ids)}

    def serving_functions(self) -> dict:
        signature = [tf.TensorSpec([None], tf.string, name="source")]
        return {"serving_default": (signature, lambda source: self.translate(source))}

    @functools.cache  # noqa: B019
    def translator(self, beam_width: int):
        return tf.function(
            lambda source: self.translate(source, beam_width),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )

    def export_examples(self, dataset, count: int) -> dict:
        import numpy as np

        for split in ("test", "valid", "train"):
            if dataset.num_examples(split):
                texts = dataset.split_data(split).source_text[:count]
                return {"source": np.array(texts, dtype=object)}
        raise ConfigError("usage error: the dataset has no sentences to check the export with")

    # --- tftrain eval / predict ---

    def decode_split(self, data, beam_width: int) -> list[list[str]]:
        """Decode every source of an EncodedSplit (by length, in batches) -> token lists."""
        import numpy as np

        sources = data.sources()
        order = np.argsort([len(s) for s in sources], kind="stable")
        decoder = self.id_decoder(beam_width)
        results: list = [None] * len(sources)
        size = self.config.decode_batch_size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            longest = max(len(sources[i]) for i in chunk)
            batch = np.zeros((len(chunk), max(longest, 1)), np.int32)
            for row, i in enumerate(chunk):
                batch[row, : len(sources[i])] = sources[i]
            for row, ids in zip(chunk, decoder(tf.constant(batch)).numpy(), strict=True):
                results[row] = self.ids_to_tokens(ids)
        return results

    def ids_to_tokens(self, ids) -> list[str]:
        tokens = []
        for i in ids:
            if i in (EOS, PAD):
                break
            tokens.append(self.target_vocabulary[i])
        return tokens

    def score(self, hypotheses: list[list[str]], references: list[list[str]]) -> dict:
        import sacrebleu

        bleu = sacrebleu.metrics.BLEU(tokenize="none", force=True).corpus_score(
            [" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]]
        )
        exact = sum(h == r for h, r in zip(hypotheses, references, strict=True))
        return {"bleu": float(bleu.score), "exact_match": exact / max(len(references), 1)}

    def evaluate_extra(
        self, dataset, split: str, *, plot: str | None = None, max_examples: int | None = None
    ) -> dict:
        data = dataset.split_data(split)
        if max_examples:
            data = data.head(max_examples)
        width = self.config.beam_width
        metrics = self.score(self.decode_split(data, width), data.target_tokens)
        metrics["beam_width"] = width
        if width > 1:
            greedy = self.score(self.decode_split(data, 1), data.target_tokens)
            metrics.update({f"greedy_{k}": v for k, v in greedy.items()})
        if plot:
            self.plot_attention(data.source_text[0], plot, width)
        return metrics

    def predict(self, request: PredictRequest):
        import numpy as np

        if request.input_file:
            with open(request.input_file, encoding="utf-8") as handle:
                lines = [line.rstrip("\r\n") for line in handle]
        else:
            lines = list(request.inputs)
        if not lines:
            raise ConfigError("usage error: give sentences with --input FILE (one per line)")
        width = request.beam_width or self.config.beam_width
        translate = self.translator(width)
        size = self.config.decode_batch_size
        translations = []
        for start in range(0, len(lines), size):
            batch = np.array(lines[start : start + size], dtype=object)
            translations += [t.decode("utf-8") for t in translate(batch)["translation"].numpy()]
        if request.attention_plot:
            self.plot_attention(lines[0], request.attention_plot, width)
        return [{"source": s, "translation": t} for s, t in zip(lines, translations, strict=True)]

    def attention_matrix(self, sentence: str, beam_width: int):
        """(source tokens, decoded tokens + </s>, attention [target, source]) for a sentence."""
        source = self.text_to_ids(tf.constant([sentence]))[:, :-1]
        ids = self.id_decoder(beam_width)(tf.cast(source, tf.int32)).numpy()[0]
        tokens = self.ids_to_tokens(ids)
        target_in = [BOS] + [self.target_vocabulary.index(t) for t in tokens]
        features = {"source": source, "target_in": tf.constant([target_in], tf.int32)}
        _, attention = self.network(features, training=False)
        source_tokens = [self.source_vocabulary[i] for i in source.numpy()[0]]
        return source_tokens, [*tokens, "</s>"], attention.numpy()[0]

    def plot_attention(self, sentence: str, path: str, beam_width: int) -> None:
        if self.config.attention == "none":
            raise ConfigError("usage error: this model has no attention to plot (attention: none)")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        source, target, weights = self.attention_matrix(sentence, beam_width)
        figure, axes = plt.subplots(figsize=(1 + 0.5 * len(source), 1 + 0.4 * len(target)))
        axes.imshow(weights, cmap="viridis", aspect="auto")
        axes.set_xticks(range(len(source)), source, rotation=90)
        axes.set_yticks(range(len(target)), target)
        axes.set_xlabel("source")
        axes.set_ylabel("decoded")
        axes.set_title(join_tokens(target[:-1], self._characters("target"))[:60])
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
