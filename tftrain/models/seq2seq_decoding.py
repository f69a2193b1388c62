"""Greedy and beam-search decoding of a seq2seq network, in TensorFlow ops (`tf.while_loop`).

Both take the encoder's output and step the network's decoder one token per row; rows end
with </s> and are padded with <pad> after it. They trace inside `tf.function`, so the exported
SavedModel decodes without Python.
"""

from __future__ import annotations

from tftrain.lazy import tf
from tftrain.preprocessing.text import BOS, EOS, PAD

NEG_INF = -1e9


def greedy_decode(network, memory, mask, states, *, max_length: int):
    """The most likely token at every step -> ids [B, T]."""
    batch = tf.shape(memory)[0]
    flat = tf.nest.flatten(states)

    def body(step, tokens, finished, output, *flat):
        current = tf.nest.pack_sequence_as(states, list(flat))
        hidden, current, _ = network.decode_step(tokens, current, memory, mask)
        best = tf.argmax(network.logits(hidden), -1, output_type=tf.int32)
        best = tf.where(finished, PAD, best)
        output = tf.concat([output, best[:, None]], 1)
        finished = finished | tf.equal(best, EOS)
        return (step + 1, best, finished, output, *tf.nest.flatten(current))

    def more(step, tokens, finished, output, *flat):
        return (step < max_length) & ~tf.reduce_all(finished)

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


def beam_search(
    network, memory, mask, states, *, width: int, vocab_size: int, max_length: int, alpha: float
):
    """Beam search with the GNMT length penalty ((5 + length) / 6) ** alpha -> ids [B, T]."""
    batch = tf.shape(memory)[0]
    size = vocab_size

    def tile(x):
        return tf.repeat(x, width, axis=0)  # row b*width + k is beam k of example b

    memory, mask = tile(memory), tile(mask)
    flat = [tile(s) for s in tf.nest.flatten(states)]
    pad_only = tf.one_hot(PAD, size, on_value=0.0, off_value=NEG_INF)

    def penalty(lengths):
        return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)

    def body(step, tokens, log_probs, lengths, finished, sequences, *flat):
        current = tf.nest.pack_sequence_as(states, list(flat))
        hidden, current, _ = network.decode_step(tokens, current, memory, mask)
        step_log_probs = tf.nn.log_softmax(network.logits(hidden))
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
        flat = [tf.gather(s, rows) for s in tf.nest.flatten(current)]
        return (step + 1, tokens, log_probs, lengths, finished, sequences, *flat)

    def more(step, tokens, log_probs, lengths, finished, sequences, *flat):
        return (step < max_length) & ~tf.reduce_all(finished)

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
