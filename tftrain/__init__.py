"""tftrain: train, evaluate and export TensorFlow models from one YAML config."""

__version__ = "0.1.0"
