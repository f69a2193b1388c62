"""Experiments across runs: `tftrain sweep` (many trials of one config) and `tftrain runs`
(the table of run directories, and the difference between two)."""
