"""The files of a checkpoint directory: which checkpoints it holds, its state file, and
damaged checkpoints set aside.

The checkpoint files are the truth. The state file (`checkpoint`, which CheckpointManager
reads to know its checkpoints) is only an index that a crash or a user can delete, empty or
leave naming files that are gone; trusted blindly, it would make `fit` start again from step
0 and later rotate the intact checkpoints away.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

STATE_FILE = "checkpoint"
NAME = "ckpt"


def on_disk(directory) -> list[str]:
    """Prefixes of the checkpoints whose index file exists, oldest (lowest step) first."""
    pattern = re.compile(rf"{NAME}-(\d+)\.index")
    found = []
    for path in Path(directory).glob(f"{NAME}-*.index"):
        match = pattern.fullmatch(path.name)
        if match:
            found.append((int(match[1]), str(Path(directory) / f"{NAME}-{match[1]}")))
    return [prefix for _, prefix in sorted(found)]


def listed(directory) -> list[str] | None:
    """The prefixes the state file lists, oldest first; None if it is missing or unreadable."""
    from tftrain.lazy import tf

    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except Exception:  # an empty or garbled file: ValueError, a protobuf ParseError, ...
        return None
    if state is None:
        return None
    return list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]


def listed_complete(directory) -> list[str]:
    """The listed checkpoints whose files are complete (what a concurrent reader may load)."""
    return [p for p in listed(directory) or [] if Path(f"{p}.index").exists()]


def state_problem(directory) -> str | None:
    """Why the state file does not match the checkpoint files, or None if it does."""
    files = on_disk(directory)
    state_file = Path(directory) / STATE_FILE
    if not files:
        return None
    if not state_file.exists():
        return f"{state_file} is missing"
    paths = listed(directory)
    if paths is None:
        return f"{state_file} is empty or unreadable"
    if Path(paths[-1]).name != Path(files[-1]).name or any(
        not Path(f"{p}.index").exists() for p in paths
    ):
        return f"{state_file} names {', '.join(Path(p).name for p in paths)}"
    return None


def describe(directory) -> str:
    files = [Path(p).name for p in on_disk(directory)]
    return f"the checkpoint files hold {', '.join(files) or 'none'}"


def write_state(directory, prefixes: list[str]) -> None:
    """Rewrite the state file to list `prefixes` (oldest first), as CheckpointManager would."""
    state_file = Path(directory) / STATE_FILE
    if not prefixes:
        state_file.unlink(missing_ok=True)
        return
    # The manager keeps (and rotates) only checkpoints stamped after last_preserved_timestamp.
    stamps = [Path(f"{p}.index").stat().st_mtime for p in prefixes]
    preserved = min(min(stamps), time.time()) - 1.0
    lines = [f'model_checkpoint_path: "{Path(prefixes[-1]).name}"']
    lines += [f'all_model_checkpoint_paths: "{Path(p).name}"' for p in prefixes]
    lines += [f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in stamps]
    lines.append(f"last_preserved_timestamp: {preserved!r}")
    temporary = state_file.with_name(STATE_FILE + ".tmp")
    temporary.write_text("\n".join(lines) + "\n")
    temporary.replace(state_file)


def files_of(prefix: str) -> list[Path]:
    path = Path(prefix)
    return sorted(path.parent.glob(path.name + ".*"))


def set_aside(prefix: str) -> list[Path]:
    """Rename a damaged checkpoint's files to damaged-ckpt-N.* (never delete them)."""
    path = Path(prefix)
    for attempt in range(1, 1000):
        tag = "damaged-" if attempt == 1 else f"damaged{attempt}-"
        moved = [p.with_name(tag + p.name) for p in files_of(prefix)]
        if not any(p.exists() for p in moved):
            break
    for source, target in zip(files_of(prefix), moved, strict=True):
        source.rename(target)
    return moved or [path]
