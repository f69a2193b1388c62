"""Models: the contract in `base`, and one module per family (found by `tftrain.registry`)."""
