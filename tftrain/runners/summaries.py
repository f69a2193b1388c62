"""TensorBoard event files: one writer per split under `logs/`; a no-op when disabled."""

from __future__ import annotations

from pathlib import Path

from tftrain.lazy import tf


class SummaryLog:
    """Writes scalars (and optional weight histograms) for `train`, `valid`, `eval` splits."""

    def __init__(self, logdir: Path, *, enabled: bool = True):
        self.logdir = Path(logdir)
        self.enabled = enabled
        self._writers: dict = {}

    def _writer(self, split: str):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(str(self.logdir / split))
        return self._writers[split]

    def scalars(self, split: str, step: int, values: dict) -> None:
        if not self.enabled:
            return
        with self._writer(split).as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def histograms(self, split: str, step: int, variables) -> None:
        if not self.enabled:
            return
        with self._writer(split).as_default(step=step):
            for variable in variables:
                tf.summary.histogram(variable.path.replace("/", "."), variable)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
