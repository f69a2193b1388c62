"""The library's own exceptions; the CLI maps each to an exit code and a short message."""


class TftrainError(Exception):
    """Base of every error tftrain reports to a user without a traceback."""

    exit_code = 1


class ConfigError(TftrainError):
    """A config or command-line usage problem (exit code 2)."""

    exit_code = 2


class DataError(TftrainError):
    """A missing, unreadable or malformed data file (exit code 1)."""


class TrainingError(TftrainError):
    """Training could not continue, e.g. a NaN loss under `on_nan: stop` (exit code 1)."""


class ExportError(TftrainError):
    """An export was written but does not reproduce the trained model (exit code 1)."""
