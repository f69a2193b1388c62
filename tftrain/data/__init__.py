"""Datasets: the contract in `base`, and one module per reader or built-in set (found by
`tftrain.registry`)."""
