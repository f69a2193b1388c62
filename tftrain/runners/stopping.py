"""Reasons to stop: early stopping on a validation metric, and SIGINT/SIGTERM at a step boundary."""

from __future__ import annotations

import math
import signal
import threading

from tftrain.errors import TftrainError


def better(value: float, best: float, higher: bool, min_delta: float) -> bool:
    """Whether `value` improves on `best` (NaN best means nothing seen yet)."""
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best + min_delta if higher else value < best - min_delta


class EarlyStopping:
    """Counts evaluations without improvement; the count lives in a checkpointed variable."""

    def __init__(self, config, higher_is_better, counter):
        self.config = config
        self.metric = config.metric
        mode = config.mode
        self.higher = self.metric in higher_is_better if mode == "auto" else mode == "max"
        self.counter = counter
        self.best = math.nan

    @property
    def should_stop(self) -> bool:
        return bool(self.config.patience) and int(self.counter.numpy()) >= self.config.patience

    def observe(self, metrics: dict) -> None:
        if not self.config.patience or self.metric not in metrics:
            return
        value = metrics[self.metric]
        if better(value, self.best, self.higher, self.config.min_delta):
            self.best = value
            self.counter.assign(0)
        else:
            self.counter.assign_add(1)


class Interrupted(TftrainError):
    """Training stopped on a signal after saving a checkpoint (exit 130 for SIGINT, 143 TERM)."""

    def __init__(self, message: str, signal_number: int | None):
        super().__init__(message)
        self.exit_code = 128 + (signal_number or signal.SIGINT)


class StopSignal:
    """While active, SIGINT/SIGTERM ask the loop to stop at the next step boundary.

    A second SIGINT raises KeyboardInterrupt at once, for a user who really wants out.
    """

    def __init__(self):
        self.requested = False
        self.signal_number: int | None = None
        self._previous: dict = {}

    def _handle(self, number, frame):
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_number = number

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False
