"""Latest-N checkpoints plus the best one by a validation metric, via CheckpointManager."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tftrain.errors import ConfigError, TftrainError
from tftrain.lazy import tf
from tftrain.runners import checkpoint_files


class CheckpointKeeper:
    """Saves and restores one `tf.train.Checkpoint` in `checkpoints/` (latest) and `best/`."""

    def __init__(
        self, checkpoint, *, latest_dir: Path, best_dir: Path, max_to_keep: int, repair=True
    ):
        self.checkpoint = checkpoint
        self.max_to_keep = max_to_keep
        self.latest_dir = self.read_dir = Path(latest_dir)  # a worker reads the chief's
        self.best_dir = Path(best_dir)
        # Only `fit` (which holds the run's lock) repairs; eval, export and predict only read.
        self.repair = repair
        self._managers = {}

    def _manager(self, directory: Path, max_to_keep: int):
        """The CheckpointManager of `directory`, made on first use: it trusts the state file,
        so a repairing keeper first makes that file list the checkpoint files."""
        if directory not in self._managers:
            if self.repair and checkpoint_files.state_problem(directory):
                checkpoint_files.write_state(directory, checkpoint_files.on_disk(directory))
            self._managers[directory] = tf.train.CheckpointManager(
                self.checkpoint, str(directory), max_to_keep=max_to_keep, checkpoint_name="ckpt"
            )
        return self._managers[directory]

    @property
    def latest(self):
        return self._manager(self.latest_dir, self.max_to_keep)

    @property
    def best(self):
        return self._manager(self.best_dir, 1)

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
        """Restore the newest readable checkpoint found in the files themselves.

        A missing, empty or stale state file is said in one line (and, when repairing,
        rewritten); damaged newer checkpoints are named and skipped (when repairing, set
        aside as damaged-ckpt-N.*), so nothing newer than the one restored is ever deleted.
        """
        warn = warn or (lambda text: print(text, file=sys.stderr))
        directory = self.read_dir
        problem = checkpoint_files.state_problem(directory)
        if problem:
            action = "rewriting it from them" if self.repair else "using them"
            warn(f"warning: {problem}; {checkpoint_files.describe(directory)}: {action}")
        candidates = checkpoint_files.on_disk(directory)
        restored, damaged = None, []
        for path in reversed(candidates):
            try:
                self.restore(path)
                restored = path
                break
            except ConfigError:
                raise
            except TftrainError as error:
                damaged.append(path)
                files = [p.name for p in checkpoint_files.files_of(path)]
                if self.repair:
                    moved = [p.name for p in checkpoint_files.set_aside(path)]
                    files = [f"{a} -> {b}" for a, b in zip(files, moved, strict=False)]
                warn(
                    f"warning: checkpoint {path} is damaged ({', '.join(files) or 'files missing'}:"
                    f" {error}); falling back to the previous one"
                )
        if self.repair and (problem or damaged):
            checkpoint_files.write_state(directory, checkpoint_files.on_disk(directory))
            self._managers.pop(directory, None)  # re-read on next use
        if restored is None and damaged:
            raise TftrainError(
                f"no readable checkpoint in {directory}; all of "
                f"{[Path(p).name for p in damaged]} are damaged"
            )
        return restored

    def resolve(self, which: str) -> str:
        """'latest', 'best' or a checkpoint path -> a checkpoint prefix that exists."""
        if which in ("latest", "best"):
            directory = self.read_dir if which == "latest" else self.best_dir
            path = (checkpoint_files.on_disk(directory) or [None])[-1]
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
