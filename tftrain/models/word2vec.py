"""word2vec: skip-gram and CBOW word embeddings with negative sampling, NCE or sampled softmax.

The data (`text_corpus`, `grouped_words`) gives one example per kept centre word: its id and
a row of context ids (-1 where the reduced window or the sentence ends). Skip-gram turns the
rows into (centre, context) pairs; CBOW averages the context vectors to predict the centre.

As in word2vec's per-pair SGD, `gradient: sum` gives every pair the full learning rate (the
batch gradient is the sum over pairs, not the mean), so `train.optimizer.learning_rate` means
word2vec's `alpha` (0.025 skip-gram, 0.05 CBOW) whatever the batch size. The reported loss is
still the mean per pair. Evaluation, export formats and `predict` live in `word2vec_tools`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tftrain.errors import ConfigError
from tftrain.lazy import keras, tf
from tftrain.models.base import Model, ModelConfig
from tftrain.registry import models
from tftrain.schema import limits


@dataclass(frozen=True)
class Word2VecConfig(ModelConfig):
    architecture: Literal["skipgram", "cbow"] = "skipgram"
    loss: Literal["negative_sampling", "nce", "sampled_softmax"] = "negative_sampling"
    embedding_size: int = field(default=100, metadata=limits(ge=1))
    negatives: int = field(default=5, metadata=limits(ge=1))
    noise_power: float = field(default=0.75, metadata=limits(ge=0, le=1))
    # nce / sampled_softmax draw one shared set of candidates per batch with this sampler.
    sampler: Literal["unigram", "log_uniform"] = "unigram"
    # sum: per-pair SGD, the learning rate is word2vec's alpha; mean: the mean over pairs
    # (then scale the learning rate with the batch size).
    gradient: Literal["sum", "mean"] = "sum"
    # A vector that occurs n > cap times in one batch gets its summed update times cap / n:
    # large batches then stay stable on frequent words (null: no cap).
    row_update_cap: int | None = field(default=16, metadata=limits(ge=1))
    cbow_mean: bool = True
    # Evaluation (`tftrain eval`): questions-words.txt analogies, similarity TSV, neighbours.
    analogies: str = ""
    analogy_top_n: int = field(default=30000, metadata=limits(ge=1))
    case_insensitive: bool = True
    similarities: str = ""
    nearest_words: tuple[str, ...] = ()
    nearest_count: int = field(default=8, metadata=limits(ge=1))


@models.register("word2vec")
class Word2Vec(Model):
    """Skip-gram / CBOW embeddings; the vectors are `network.input_vectors`."""

    Config = Word2VecConfig
    description = "word2vec skip-gram / CBOW with negative sampling, NCE or sampled softmax"

    def __init__(self, config, spec):
        if spec.task != "word_embedding":
            raise ConfigError(
                f"config error: model 'word2vec' needs a word corpus (data.type text_corpus "
                f"or grouped_words), but this data is {spec.task}"
            )
        super().__init__(config, spec)
        counts = np.asarray(spec.extra["counts"], dtype=np.float64)
        noise = counts**config.noise_power
        self.noise_cdf = np.cumsum(noise / noise.sum()).astype(np.float32)
        self.counts = [int(c) for c in counts]

    @property
    def vocabulary(self) -> list:
        return self.spec.vocabulary

    def build(self):
        size, dim = len(self.spec.vocabulary), self.config.embedding_size
        with_bias = self.config.loss != "negative_sampling"

        class Word2VecNetwork(keras.Model):
            def __init__(self):
                super().__init__(name="word2vec")
                # word2vec's initialisation: input vectors small and random, outputs zero.
                self.input_vectors = self.add_weight(
                    shape=(size, dim),
                    initializer=keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim),
                    name="input_vectors",
                )
                self.output_vectors = self.add_weight(
                    shape=(size, dim), initializer="zeros", name="output_vectors"
                )
                if with_bias:
                    self.output_bias = self.add_weight(
                        shape=(size,), initializer="zeros", name="output_bias"
                    )

        return Word2VecNetwork()

    # --- training ------------------------------------------------------------------------

    def forward(self, features, *, training: bool, state=()):
        net = self.network
        center, context = features["center"], features["context"]
        if self.config.architecture == "skipgram" and self.config.loss == "negative_sampling":
            return self.skipgram_shared_negatives(center, context, features["seed"]), state
        if self.config.architecture == "skipgram":
            pairs = tf.where(context >= 0)
            targets = tf.gather_nd(context, pairs)
            # Gather each centre's vector once, so its pairs' gradients add up before scatter.
            hidden = tf.gather(self.gather(net.input_vectors.value, center), pairs[:, 0])
        else:
            found = tf.where(context >= 0)
            rows = found[:, 0]
            vectors = self.gather(net.input_vectors.value, tf.gather_nd(context, found))
            batch = tf.shape(center, out_type=tf.int64)[0]
            total = tf.math.unsorted_segment_sum(vectors, rows, batch)
            width = tf.math.unsorted_segment_sum(tf.ones_like(rows, tf.float32), rows, batch)
            if self.config.cbow_mean:
                total /= tf.maximum(width, 1.0)[:, None]
            keep = tf.where(width > 0)[:, 0]
            hidden, targets = tf.gather(total, keep), tf.gather(center, keep)
        losses = self.pair_losses(hidden, targets, features["seed"])
        return self.summed(tf.reduce_sum(losses), tf.cast(tf.size(losses), tf.float32)), state

    def summed(self, loss_sum, count) -> dict:
        if self.config.gradient != "mean":
            # Same value; gradient times `count`, so the loop's sum/count objective has the
            # summed (per-pair SGD) gradient.
            loss_sum += (count - 1.0) * (loss_sum - tf.stop_gradient(loss_sum))
        return {"loss_sum": loss_sum, "pairs": count}

    def gather(self, table, ids):
        """Rows of `table`; a row occurring n > row_update_cap times in `ids` has its
        gradient scaled by cap / n (the value is unchanged)."""
        rows = tf.gather(table, ids)
        cap = self.config.row_update_cap
        if not cap:
            return rows
        _, where, counts = tf.unique_with_counts(tf.reshape(ids, [-1]))
        scale = tf.minimum(1.0, cap / tf.cast(tf.gather(counts, where), tf.float32))
        scale = tf.reshape(scale, tf.shape(ids))[..., None]
        return rows * scale + tf.stop_gradient(rows * (1.0 - scale))

    def draw_negatives(self, count, seed):
        """[count, negatives] ids from the unigram^noise_power distribution."""
        negatives = self.config.negatives
        draws = tf.random.stateless_uniform([1, count * negatives], seed)
        ids = tf.searchsorted(tf.constant(self.noise_cdf)[None, :], draws, "right")
        return tf.reshape(tf.minimum(ids, len(self.vocabulary) - 1), [count, negatives])

    def skipgram_shared_negatives(self, center, context, seed) -> dict:
        """Skip-gram negative sampling with one draw of noise words per centre word.

        A centre's pairs share its input vector, so sharing its noise words too lets the
        noise term be computed once per centre and weighted by its number of pairs: about a
        third of the gathers and scatters of one draw per pair, for the same expected gradient.
        """
        net = self.network
        outputs = net.output_vectors.value
        hidden = self.gather(net.input_vectors.value, center)  # [B, D]
        found = context >= 0
        pairs = tf.where(found)
        targets = tf.gather_nd(context, pairs)
        positive = tf.reduce_sum(
            tf.gather(hidden, pairs[:, 0]) * self.gather(outputs, targets), axis=-1
        )
        negatives = self.draw_negatives(tf.shape(center)[0], seed)  # [B, K]
        scores = tf.reduce_sum(self.gather(outputs, negatives) * hidden[:, None, :], -1)
        width = tf.reduce_sum(tf.cast(found, tf.float32), axis=1)  # pairs per centre
        noise = tf.reduce_sum(tf.nn.softplus(scores), axis=1) * width
        loss_sum = tf.reduce_sum(tf.nn.softplus(-positive)) + tf.reduce_sum(noise)
        return self.summed(loss_sum, tf.reduce_sum(width))

    def pair_losses(self, hidden, targets, seed):
        """Per-pair loss of predicting `targets` (ids) from `hidden` vectors."""
        net, config = self.network, self.config
        size = len(self.vocabulary)
        if config.loss == "negative_sampling":
            negatives = self.draw_negatives(tf.shape(targets)[0], seed)
            outputs = net.output_vectors.value
            positive = tf.reduce_sum(hidden * self.gather(outputs, targets), axis=-1)
            negative = tf.linalg.matvec(self.gather(outputs, negatives), hidden)
            real = tf.cast(negatives != targets[:, None], tf.float32)  # as word2vec skips them
            return tf.nn.softplus(-positive) + tf.reduce_sum(tf.nn.softplus(negative) * real, -1)
        labels = tf.cast(targets[:, None], tf.int64)
        if config.sampler == "unigram":
            sampled = tf.random.fixed_unigram_candidate_sampler(
                labels,
                num_true=1,
                num_sampled=config.negatives,
                unique=True,
                range_max=size,
                distortion=config.noise_power,
                unigrams=self.counts,
            )
        else:
            sampled = tf.random.log_uniform_candidate_sampler(
                labels, num_true=1, num_sampled=config.negatives, unique=True, range_max=size
            )
        loss = tf.nn.nce_loss if config.loss == "nce" else tf.nn.sampled_softmax_loss
        return loss(
            weights=net.output_vectors.value,
            biases=net.output_bias.value,
            labels=labels,
            inputs=hidden,
            num_sampled=config.negatives,
            num_classes=size,
            sampled_values=sampled,
        )

    def losses_and_metrics(self, labels, outputs) -> dict:
        return {"loss": (outputs["loss_sum"], outputs["pairs"])}

    def regularized_variables(self) -> list:
        return [self.network.input_vectors]

    # --- vectors, serving, evaluation, export, predict ------------------------------------

    def vectors(self) -> np.ndarray:
        return np.asarray(self.network.input_vectors.numpy(), dtype=np.float32)

    def serving_functions(self) -> dict:
        signature = [tf.TensorSpec([None], tf.int32, name="ids")]

        def embed(ids):
            return {"embeddings": tf.gather(self.network.input_vectors.value, ids)}

        return {"serving_default": (signature, embed)}

    def export_examples(self, dataset, count: int) -> dict:
        return {"ids": np.arange(min(count, len(self.vocabulary)), dtype=np.int32)}

    def evaluate_extra(self, dataset, split: str, *, plot=None, max_examples=None) -> dict:
        from tftrain.models import word2vec_tools

        return word2vec_tools.evaluate(self)

    def export_formats(self) -> dict:
        from tftrain.models import word2vec_tools

        return {
            "word2vec": word2vec_tools.write_word2vec,
            "projector": word2vec_tools.write_projector,
        }

    def predict(self, request):
        from tftrain.models import word2vec_tools

        return word2vec_tools.predict(self, request)
