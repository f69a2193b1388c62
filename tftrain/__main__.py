"""`python -m tftrain` runs the command-line interface."""

from tftrain.cli import main

main()
