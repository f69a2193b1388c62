"""Models: the contract in `base`, and one module per family, registered by name."""

# Importing a family's module registers it.
from tftrain.models import cnn, linear, lstm, seq2seq, softmax, word2vec  # noqa: F401
