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


def decode_utf8(raw: bytes, name, error=DataError) -> str:
    """`raw` as text (a leading byte-order mark dropped); invalid UTF-8 raises `error(message)`
    naming `name`, the line, the byte and its offset, so a user can find it in an editor."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        line = raw.count(b"\n", 0, problem.start) + 1
        raise error(
            f"{name}, line {line}: not valid UTF-8 (byte 0x{raw[problem.start]:02x} at byte "
            f"offset {problem.start}); save the file as UTF-8"
        ) from None
