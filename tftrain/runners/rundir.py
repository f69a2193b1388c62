"""The run directory: where a run's config, checkpoints, logs, metrics and exports live."""

from __future__ import annotations

import errno
import json
import platform
import sys
import time
from pathlib import Path

from tftrain.config_reader import shorten
from tftrain.data.base import DataSpec
from tftrain.errors import ConfigError, TftrainError

# mkdir failures that come from the path the user gave, not from the machine (a full disk).
PATH_ERRORS = {
    errno.ENAMETOOLONG,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.EINVAL,
}


class RunDir:
    """Paths and small files of one run directory."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def spec_file(self) -> Path:
        return self.path / "data_spec.json"

    @property
    def run_file(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.path / "best"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def export(self) -> Path:
        return self.path / "export"

    def create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            if error.errno not in PATH_ERRORS:
                raise
            raise ConfigError(
                f"usage error: cannot create run directory {shorten(self.path)}: "
                f"{error.strerror}; pass another --run-dir"
            ) from None

    def lock(self) -> RunLock:
        """An exclusive lock on this run directory for one training process."""
        return RunLock(self.path / ".lock")

    def require(self) -> None:
        """A run directory another command can use: it must hold the resolved config."""
        try:
            found = self.config_file.is_file()
        except OSError as error:  # a name the system refuses, e.g. too long
            raise ConfigError(
                f"usage error: cannot use run directory {shorten(self.path)}: {error.strerror}"
            ) from None
        if not found:
            raise ConfigError(
                f"usage error: {self.path} is not a tftrain run directory (no config.yaml); "
                f"pass the --run-dir that `tftrain fit` used"
            )

    def load_config(self, overrides=()):
        from tftrain.config import load_config

        self.require()
        return load_config(self.config_file, overrides)

    def save_spec(self, spec: DataSpec) -> None:
        self.spec_file.write_text(spec.to_json())

    def append_metrics(self, record: dict) -> None:
        with self.metrics_file.open("a") as handle:
            handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def read_run(self) -> dict:
        if not self.run_file.exists():
            return {}
        return json.loads(self.run_file.read_text())

    def start(self, config, setup, *, resumed: bool, quiet: bool) -> None:
        """The run's files at the start of `fit`: config.yaml, data_spec.json, run.json.

        Resuming with a changed config lists the keys that differ from the run's own.
        """
        from tftrain.lazy import tf
        from tftrain.runners.progress import say

        if resumed and self.config_file.exists():
            changed = changed_keys(self.load_config().to_dict(), config.to_dict())
            if changed:
                say(
                    "warning: the config differs from the one this run started with: "
                    + ", ".join(changed),
                    quiet=quiet,
                )
        self.config_file.write_text(config.to_yaml())
        self.save_spec(setup.spec)
        self.write_run(
            status="running",
            name=config.name,
            seed=config.seed,
            config_hash=config.digest(),
            versions=versions(),
            devices=[d.name for d in tf.config.list_logical_devices()],
            strategy=config.device.strategy,
            steps_per_epoch=setup.steps_per_epoch,
            precision=setup.state.precision,
        )

    def check_writable(self) -> None:
        """Every folder and file `fit` writes can be written: checked before training starts,
        so a read-only or broken run directory fails at once, naming the path."""
        import os
        import tempfile

        folders = [self.path, self.checkpoints, self.best, self.logs]
        folders += [self.logs / "train", self.logs / "valid"]
        files = [self.config_file, self.spec_file, self.run_file, self.metrics_file]
        for path in folders + files:
            if path.is_symlink() and not path.exists():
                problem = "is a dangling symbolic link"
            elif not path.exists():
                continue  # made later, inside a folder checked here
            elif path in folders and not path.is_dir():
                problem = "is not a folder"
            elif path in files and (path.is_dir() or not os.access(path, os.W_OK)):
                problem = "is not a writable file"
            else:
                problem = None
                if path.is_dir():
                    try:  # os.access says yes to root even on a read-only file system
                        tempfile.TemporaryFile(dir=path, prefix=".tftrain-write-check-").close()
                    except OSError as error:
                        problem = f"cannot be written ({error.strerror})"
            if problem:
                raise TftrainError(
                    f"{path} {problem}; training did not start. Fix its permissions or use "
                    f"another --run-dir."
                )

    def mark_failed(self, error: BaseException) -> None:
        """run.json says "failed" and why (best effort: the folder may be what failed)."""
        try:
            self.write_run(status="failed", failure=failure_reason(error))
        except OSError:
            pass

    def write_run(self, **fields) -> None:
        """Update run.json: versions, seed, config hash, devices, status."""
        record = self.read_run()
        record.update(fields)
        temporary = self.run_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True))
        temporary.replace(self.run_file)


def failure_reason(error: BaseException) -> str:
    """One line saying why a run failed."""
    lines = str(error).splitlines()
    if isinstance(error, TftrainError):
        return lines[0] if lines else type(error).__name__
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def versions() -> dict:
    import keras
    import tensorflow as tf

    import tftrain

    return {
        "tftrain": tftrain.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config trees."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


class RunLock:
    """`fcntl.flock` on RUN_DIR/.lock: refused while another live process trains this run.

    The kernel drops the lock when its process dies, so a crashed run never leaves it stuck.
    """

    def __init__(self, path: Path):
        self.path = path
        self.handle = None

    def __enter__(self):
        import fcntl
        import os
        import socket

        self.handle = self.path.open("a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            self.handle = None
            raise RunLocked(
                f"{self.path.parent} is being trained by {holder}; wait for it to finish, "
                f"stop it, or use another --run-dir"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()  # closing releases the lock
            self.handle = None
        return False


class RunLocked(TftrainError):
    """Another live process holds the run directory."""
