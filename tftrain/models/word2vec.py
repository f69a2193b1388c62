"""word2vec: skip-gram and CBOW word embeddings with negative sampling, NCE or sampled softmax.

The data (`text_corpus`, `grouped_words`) gives batches of word ids in text order, -1 ending
a sentence. The model sub-samples them and draws each kept word's reduced context window
(`word2vec_sampling`); skip-gram trains (centre, context) pairs, CBOW averages the context
vectors to predict the centre.

As in word2vec's per-pair SGD, `gradient: sum` gives every pair the full learning rate (the
batch gradient is the sum over pairs, not the mean), so `train.optimizer.learning_rate` means
word2vec's `alpha` (0.025 skip-gram, 0.05 CBOW) whatever the batch size. The reported loss is
still the mean per pair. Evaluation, export formats and `predict` live in `word2vec_tools`.

All three losses score the target against `negatives` noise words drawn per centre word
(skip-gram) or per example (CBOW) from the noise distribution. `nce` and `sampled_softmax` add
an output bias and subtract log(expected count of the word among the draws), exactly as
`tf.nn.nce_loss` / `tf.nn.sampled_softmax_loss` do for one example's candidates; drawing per
centre instead of once per batch keeps per-pair SGD stable on large batches.

With negative sampling and plain SGD the `fused` kernel (`model.kernel`, tftrain/ops) replaces
all of this in training: one C++ op per batch sub-samples, draws the windows and runs
word2vec.c's per-pair updates in place.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import click
import numpy as np

from tftrain.errors import ConfigError, TrainingError
from tftrain.lazy import keras, tf
from tftrain.models.base import Model, ModelConfig, PredictOption
from tftrain.models.word2vec_sampling import (
    alias_table,
    context_windows,
    keep_probabilities,
    noise_distribution,
)
from tftrain.registry import models
from tftrain.schema import limits


@dataclass(frozen=True)
class Word2VecConfig(ModelConfig):
    architecture: Literal["skipgram", "cbow"] = "skipgram"
    loss: Literal["negative_sampling", "nce", "sampled_softmax"] = "negative_sampling"
    embedding_size: int = field(default=100, metadata=limits(ge=1))
    negatives: int = field(default=5, metadata=limits(ge=1))
    noise_power: float = field(default=0.75, metadata=limits(ge=0, le=1))
    # Noise words: unigram^noise_power counts, or log-uniform (Zipfian) over frequency ranks
    # (the default sampler of tf.nn.nce_loss, used by the TensorFlow word2vec tutorial).
    sampler: Literal["unigram", "log_uniform"] = "unigram"
    # sum: per-pair SGD, the learning rate is word2vec's alpha; mean: the mean over pairs
    # (then scale the learning rate with the batch size).
    gradient: Literal["sum", "mean"] = "sum"
    # A vector that occurs n > cap times in one batch gets its summed update times cap / n:
    # large batches then stay stable on frequent words (null: no cap).
    row_update_cap: int | None = field(default=16, metadata=limits(ge=1))
    cbow_mean: bool = True
    # How negative sampling trains: `fused` runs word2vec's per-pair SGD as one C++ op that
    # updates the vectors in place (tftrain/ops, compiled on first use); `graph` differentiates
    # TensorFlow ops and lets the optimizer apply the sparse gradients (any optimizer, clipping,
    # strategies); `auto` takes fused when the loss and train settings allow it.
    kernel: Literal["auto", "fused", "graph"] = "auto"
    # Evaluation (`tftrain eval`): questions-words.txt analogies, similarity TSV, neighbours.
    analogies: str = ""
    analogy_top_n: int = field(default=30000, metadata=limits(ge=1))
    case_insensitive: bool = True
    similarities: str = ""
    nearest_words: tuple[str, ...] = ()
    nearest_count: int = field(default=8, metadata=limits(ge=1))


def scaled_gradient(values, scale):
    """`values` unchanged; their gradient times `scale` (no gradient for `scale`)."""

    @tf.custom_gradient
    def identity(values):
        return tf.identity(values), lambda upstream: upstream * scale

    return identity(values)


@models.register("word2vec")
class Word2Vec(Model):
    """Skip-gram / CBOW embeddings; the vectors are `network.input_vectors`."""

    Config = Word2VecConfig
    description = "word2vec skip-gram / CBOW with negative sampling, NCE or sampled softmax"
    tasks = frozenset({"word_embedding"})
    predict_options = (
        PredictOption("--top-k", "how many words to list", click.IntRange(min=1), 10),
        PredictOption("--nearest", "the nearest neighbours of a word", metavar="WORD"),
        PredictOption("--analogy", "A - B + C (king man woman -> queen)", nargs=3, metavar="A B C"),
    )

    def __init__(self, config, spec):
        super().__init__(config, spec)
        counts = np.asarray(spec.extra["counts"], dtype=np.float64)
        noise = noise_distribution(counts, config.sampler, config.noise_power)
        self.noise = noise
        self.noise_cdf = np.cumsum(noise).astype(np.float32)
        # Sub-sampling, a data setting: the corpus counted the words, the model draws.
        self.keep = keep_probabilities(counts, spec.extra.get("sample", 0.0)).astype(np.float32)
        self.window = int(spec.extra["window"])
        # nce / sampled_softmax subtract log(expected draws of a word) = log(negatives x q(w)).
        self.log_expected_count = np.log(np.maximum(config.negatives * noise, 1e-30)).astype(
            np.float32
        )

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

    def in_place_update(self, conflicts: list[str]) -> bool:
        """Whether training uses the fused kernel, given the train settings that need gradients
        (`conflicts`, from the loop). Builds the op on first use."""
        kernel = self.config.kernel
        if kernel == "graph":
            return False
        reasons = list(conflicts)
        if self.config.loss != "negative_sampling":
            reasons.append(f"model.loss={self.config.loss} (the kernel does negative_sampling)")
        if self.config.gradient == "mean":
            reasons.append("model.gradient=mean (the kernel is per-pair SGD)")
        if reasons and kernel == "fused":
            raise ConfigError(
                "config error: model.kernel: fused updates the vectors in place with plain SGD "
                "and cannot honour " + ", ".join(reasons) + "; set model.kernel: graph"
            )
        if reasons:
            return False
        from tftrain import ops

        try:
            self.fused_step = ops.load("word2vec").word2vec_train_tokens
            # Only the fused kernel draws from the alias table: built here, not at start-up
            # (a Python pass over the vocabulary that eval, predict and export do not need).
            self.noise_accept, self.noise_alias = alias_table(self.noise)
        except ops.OpBuildError as error:
            if kernel == "fused":
                raise TrainingError(f"model.kernel: fused is unavailable here: {error}") from error
            warnings.warn(f"word2vec falls back to the slower graph kernel: {error}", stacklevel=2)
            return False
        return True

    def train_in_place(self, features, learning_rate) -> dict:
        """One fused SGD step on a batch (see `in_place_update`); returns the loss sums."""
        net = self.network
        loss_sum, pairs, _ = self.fused_step(
            net.input_vectors.value.handle,
            net.output_vectors.value.handle,
            features["tokens"],
            tf.constant(self.keep),
            tf.constant(self.noise_accept),
            tf.constant(self.noise_alias),
            features["seed"],
            tf.cast(learning_rate, tf.float32),
            window=self.window,
            negatives=self.config.negatives,
            cbow=self.config.architecture == "cbow",
            cbow_mean=self.config.cbow_mean,
        )
        return {"loss": (loss_sum, pairs)}

    def windows(self, features, *, training: bool):
        """(centres, context rows) of a batch; sub-sampled only in training."""
        keep = self.keep if training else None
        return context_windows(features["tokens"], features["seed"], self.window, keep)

    def forward(self, features, *, training: bool, state=()):
        net = self.network
        center, context = self.windows(features, training=training)
        outputs = net.output_vectors.value
        if self.config.architecture == "skipgram":
            # One noise draw per centre word, shared by its pairs: a centre's pairs share its
            # input vector, so the noise scores are computed once per centre (about a third of
            # the gathers and scatters of a draw per pair, for the same expected gradient).
            hidden = self.gather(net.input_vectors.value, center)  # [B, D]
            found = context >= 0
            pairs = tf.where(found)
            rows, targets = pairs[:, 0], tf.gather_nd(context, pairs)
            width = tf.reduce_sum(tf.cast(found, tf.float32), axis=1)  # pairs per centre
            true_scores = tf.reduce_sum(
                tf.gather(hidden, rows) * self.gather(outputs, targets), axis=-1
            )
        else:
            found = tf.where(context >= 0)
            vectors = self.gather(net.input_vectors.value, tf.gather_nd(context, found))
            batch = tf.shape(center, out_type=tf.int64)[0]
            total = tf.math.unsorted_segment_sum(vectors, found[:, 0], batch)
            count = tf.math.unsorted_segment_sum(
                tf.ones_like(found[:, 0], tf.float32), found[:, 0], batch
            )
            if self.config.cbow_mean:
                total /= tf.maximum(count, 1.0)[:, None]
            keep = tf.where(count > 0)[:, 0]
            hidden, targets = tf.gather(total, keep), tf.gather(center, keep)
            rows = tf.range(tf.shape(targets, out_type=tf.int64)[0])
            width = tf.ones_like(targets, tf.float32)
            true_scores = tf.reduce_sum(hidden * self.gather(outputs, targets), axis=-1)
        # A stream of its own for the noise words (the windows drew from the batch's seed).
        noise_seed = tf.random.experimental.stateless_fold_in(features["seed"], 1)
        noise = self.draw_negatives(tf.shape(hidden)[0], noise_seed)  # [N, K]
        noise_scores = tf.reduce_sum(self.gather(outputs, noise) * hidden[:, None, :], -1)
        loss_sum = self.sampled_loss(true_scores, targets, noise_scores, noise, rows, width)
        return self.summed(loss_sum, tf.reduce_sum(width)), state

    def sampled_loss(self, true_scores, targets, noise_scores, noise, rows, width):
        """Summed loss of pairs scored against their row's noise words.

        true_scores [P] and targets [P] are per pair; noise_scores and noise [N, K] per row
        (centre word or CBOW example); pair p belongs to row rows[p]; width [N] counts the
        pairs of each row.
        """
        loss = self.config.loss
        if loss != "negative_sampling":
            true_scores += self.bias(targets) - tf.gather(self.log_expected_count, targets)
            noise_scores += self.bias(noise) - tf.gather(self.log_expected_count, noise)
        if loss == "sampled_softmax":
            logits = tf.concat([true_scores[:, None], tf.gather(noise_scores, rows)], axis=1)
            # A noise word equal to the target is an accidental hit: left out of the softmax.
            hit = tf.gather(noise, rows) == tf.cast(targets[:, None], noise.dtype)
            logits = tf.concat(
                [logits[:, :1], tf.where(hit, tf.float32.min, logits[:, 1:])], axis=1
            )
            return tf.reduce_sum(tf.reduce_logsumexp(logits, axis=1) - true_scores)
        noise_terms = tf.nn.softplus(noise_scores)
        if self.config.architecture == "cbow" and loss == "negative_sampling":
            # word2vec skips a noise word equal to the target (per-pair noise only).
            noise_terms *= tf.cast(noise != tf.cast(targets[:, None], noise.dtype), tf.float32)
        return tf.reduce_sum(tf.nn.softplus(-true_scores)) + tf.reduce_sum(
            tf.reduce_sum(noise_terms, axis=1) * width
        )

    def bias(self, ids):
        """Output biases of `ids`, with the same update cap as the vectors."""
        table = self.network.output_bias.value[:, None]
        return tf.squeeze(self.gather(table, ids), -1)

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
        # Occurrences per row by a dense count over the vocabulary: cheaper than a hash-based
        # unique on tens of thousands of ids.
        size = len(self.vocabulary)
        counts = tf.math.bincount(ids, minlength=size, maxlength=size, dtype=tf.float32)
        scale = tf.minimum(1.0, cap / tf.gather(counts, ids))[..., None]
        return scaled_gradient(rows, scale)

    def draw_negatives(self, count, seed):
        """[count, negatives] ids from the noise distribution."""
        negatives = self.config.negatives
        draws = tf.random.stateless_uniform([1, count * negatives], seed)
        ids = tf.searchsorted(tf.constant(self.noise_cdf)[None, :], draws, "right")
        return tf.reshape(tf.minimum(ids, len(self.vocabulary) - 1), [count, negatives])

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
