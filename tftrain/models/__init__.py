"""Models: the contract in `base`, and one module per family, registered by name."""

from tftrain.models import linear, softmax  # noqa: F401  (importing registers them)
