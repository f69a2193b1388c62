"""Benchmarks: tftrain against a peer (Keras model.fit, gensim, ...) in the same run."""
