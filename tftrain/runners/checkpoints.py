"""Latest-N checkpoints plus the best one by a validation metric, via CheckpointManager."""

from __future__ import annotations

import json
from pathlib import Path

from tftrain.errors import ConfigError, TftrainError
from tftrain.lazy import tf


class CheckpointKeeper:
    """Saves and restores one `tf.train.Checkpoint` in `checkpoints/` (latest) and `best/`."""

    def __init__(self, checkpoint, *, latest_dir: Path, best_dir: Path, max_to_keep: int):
        self.checkpoint = checkpoint
        self.latest = tf.train.CheckpointManager(
            checkpoint, str(latest_dir), max_to_keep=max_to_keep, checkpoint_name="ckpt"
        )
        self.best = tf.train.CheckpointManager(
            checkpoint, str(best_dir), max_to_keep=1, checkpoint_name="ckpt"
        )
        self.best_dir = Path(best_dir)

    @property
    def latest_path(self) -> str | None:
        return self.latest.latest_checkpoint

    def save(self, step: int) -> str:
        return self.latest.save(checkpoint_number=step)

    def save_best(self, step: int, metric: str, value: float) -> str:
        path = self.best.save(checkpoint_number=step)
        (self.best_dir / "best.json").write_text(
            json.dumps({"metric": metric, "value": value, "step": step, "checkpoint": path})
        )
        return path

    def restore_latest(self) -> str | None:
        path = self.latest.latest_checkpoint
        if path:
            self.restore(path)
        return path

    def resolve(self, which: str) -> str:
        """'latest', 'best' or a checkpoint path -> a checkpoint prefix that exists."""
        if which == "latest":
            path = self.latest.latest_checkpoint
        elif which == "best":
            path = self.best.latest_checkpoint
        else:
            path = which if tf.train.checkpoint_exists(which) else None
            if path is None and Path(which).is_dir():
                path = tf.train.latest_checkpoint(which)
        if not path:
            raise ConfigError(f"usage error: no {which!r} checkpoint found; has `fit` run?")
        return path

    def restore(self, path: str) -> None:
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as error:
            raise TftrainError(
                f"cannot restore checkpoint {path}: {str(error).splitlines()[0]}"
            ) from None
