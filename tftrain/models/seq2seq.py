"""Encoder-decoder with attention: teacher-forced training, greedy and beam search, BLEU.

The network is in `seq2seq_network.py`, the decoding loops in `seq2seq_decoding.py`. Decoder
layer i starts from encoder layer i's final state. The exported signature maps raw source
strings to target strings: tokenisation (`tftrain.preprocessing.text`), vocabulary lookups
(`tf.lookup.StaticHashTable`), decoding and detokenisation all run inside the graph.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import click

from tftrain.data.base import DataSpec
from tftrain.errors import ConfigError
from tftrain.lazy import tf
from tftrain.models.base import Model, ModelConfig, PredictOption, PredictRequest
from tftrain.models.seq2seq_decoding import beam_search, greedy_decode
from tftrain.models.seq2seq_network import make_network
from tftrain.plots import draw_attention
from tftrain.preprocessing.text import BOS, EOS, PAD, SPACE, UNK, join_tokens, tokenize
from tftrain.registry import models
from tftrain.schema import FieldError, limits


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


@models.register("seq2seq")
class Seq2Seq(Model):
    """Encoder-decoder with attention, sampled softmax, greedy/beam decoding, strings export."""

    Config = Seq2SeqConfig
    description = "encoder-decoder with attention (bahdanau/luong), beam search, BLEU"
    higher_is_better = frozenset({"accuracy", "bleu", "exact_match"})
    tasks = frozenset({"seq2seq"})
    predict_options = (
        PredictOption("--input", "a file of sentences to translate, one per line"),
        PredictOption("--beam-width", "beam search width", click.IntRange(min=1)),
        PredictOption("--attention-plot", "draw the first sentence's attention (PNG)"),
    )

    def __init__(self, config, spec: DataSpec):
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
            return greedy_decode(
                self.network, memory, mask, states, max_length=self.config.max_decode_length
            )
        return beam_search(
            self.network,
            memory,
            mask,
            states,
            width=beam_width,
            vocab_size=len(self.target_vocabulary),
            max_length=self.config.max_decode_length,
            alpha=self.config.length_penalty,
        )

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

        if request["input"]:
            with open(request["input"], encoding="utf-8") as handle:
                lines = [line.rstrip("\r\n") for line in handle]
        else:
            lines = list(request.inputs)
        if not lines:
            raise ConfigError("usage error: give sentences with --input FILE (one per line)")
        width = request["beam_width"] or self.config.beam_width
        translate = self.translator(width)
        size = self.config.decode_batch_size
        translations = []
        for start in range(0, len(lines), size):
            batch = np.array(lines[start : start + size], dtype=object)
            translations += [t.decode("utf-8") for t in translate(batch)["translation"].numpy()]
        if request["attention_plot"]:
            self.plot_attention(lines[0], request["attention_plot"], width)
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
        source, target, weights = self.attention_matrix(sentence, beam_width)
        title = join_tokens(target[:-1], self._characters("target"))[:60]
        draw_attention(path, source, target, weights, title=title)
