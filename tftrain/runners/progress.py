"""Per-epoch progress: a tqdm bar on a terminal, plain periodic lines otherwise, or nothing."""

from __future__ import annotations

import sys
import time


class Progress:
    """Shows steps, loss and throughput for one epoch on stderr."""

    def __init__(
        self,
        *,
        epoch: int,
        total: int | None,
        start: int,
        quiet: bool,
        every: int,
        unit: str = "examples",
    ):
        self.quiet = quiet
        self.unit = "ex" if unit == "examples" else unit
        self.epoch = epoch
        self.total = total
        self.done = start
        self.every = every
        self.last_line = start
        self.started = time.perf_counter()
        self.examples = 0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=start, desc=f"epoch {epoch + 1}", unit="step", leave=False
            )

    def update(self, steps: int, units: float, values: dict) -> None:
        """`steps` more done, covering `units` examples (or words, ...)."""
        self.done += steps
        self.examples += units
        rate = self.examples / max(time.perf_counter() - self.started, 1e-9)
        shown = {k: f"{v:.4g}" for k, v in values.items()}
        if self.bar is not None:
            self.bar.set_postfix(**shown, **{f"{self.unit}_per_s": f"{rate:.0f}"}, refresh=False)
            self.bar.update(steps)
        elif not self.quiet and self.done - self.last_line >= self.every:
            self.last_line = self.done
            of = f"/{self.total}" if self.total else ""
            text = "  ".join(f"{k} {v}" for k, v in shown.items())
            print(
                f"epoch {self.epoch + 1} step {self.done}{of}  {text}  {rate:.0f} {self.unit}/s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def say(message: str, *, quiet: bool = False) -> None:
    """A log line on stderr (stdout is kept for results)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)
