"""Latest-N checkpoints plus the best one by a validation metric, via CheckpointManager."""

from __future__ import annotations

import json
import sys
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

    def restore_latest(self, warn=None) -> str | None:
        """Restore the newest readable checkpoint; damaged newer ones are named and skipped."""
        for path in reversed(self.latest.checkpoints):
            try:
                self.restore(path)
                return path
            except ConfigError:
                raise
            except TftrainError as error:
                files = sorted(p.name for p in Path(path).parent.glob(Path(path).name + ".*"))
                message = (
                    f"warning: checkpoint {path} is damaged ({', '.join(files) or 'files missing'}:"
                    f" {error}); falling back to the previous one"
                )
                (warn or (lambda text: print(text, file=sys.stderr)))(message)
        if self.latest.checkpoints:
            raise TftrainError(
                f"no readable checkpoint in {Path(self.latest.directory)}; all of "
                f"{[Path(p).name for p in self.latest.checkpoints]} are damaged"
            )
        return None

    def resolve(self, which: str) -> str:
        """'latest', 'best' or a checkpoint path -> a checkpoint prefix that exists."""
        if which == "latest":
            path = self.latest.latest_checkpoint
        elif which == "best":
            path = self.best.latest_checkpoint
        else:
            path = which if Path(f"{which}.index").exists() else None
            if path is None and Path(which).is_dir():
                path = tf.train.latest_checkpoint(which)
        if not path:
            raise ConfigError(f"usage error: no {which!r} checkpoint found; has `fit` run?")
        return path

    def restore(self, path: str) -> None:
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except AssertionError as error:
            # Readable, but some objects of today's checkpoint are not in it (e.g. state a
            # newer tftrain saves): keep what was restored and say what was not.
            print(
                f"warning: {path} lacks some state this version saves; restored the rest "
                f"({str(error).splitlines()[0][:160]})",
                file=sys.stderr,
            )
        except ValueError as error:
            if "incompatible tensor with shape" not in str(error):
                raise TftrainError(f"cannot restore checkpoint {path}: {error}") from None
            # Not damage: the config now builds a model of another shape.
            raise ConfigError(
                f"config error: cannot resume from {path}: {str(error).splitlines()[0]} The "
                f"config changed the model's shape; use a new --run-dir, or warm-start from "
                f"this run with train.init_from."
            ) from None
        except Exception as error:  # unreadable files fail in many ways (OpError, IndexError..)
            raise TftrainError(
                f"cannot restore checkpoint {path}: {str(error).splitlines()[0]}"
            ) from None
