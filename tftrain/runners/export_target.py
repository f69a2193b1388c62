"""Where `tftrain export` may write: never over a run's own files, and `--force` replaces only
an earlier export of the same format (known by its manifest), so no path typo can delete a run.
"""

from __future__ import annotations

import json
from pathlib import Path

from tftrain.errors import ConfigError

MANIFEST = "tftrain_export.json"
# What makes a run directory a run, and must never be written over by an export.
RUN_MARKERS = ("config.yaml", "run.json", "checkpoints")
RUN_PARTS = ("config.yaml", "run.json", "data_spec.json", "metrics.jsonl", "checkpoints", "best")
RUN_PARTS += ("logs", ".lock")


def is_run_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / "config.yaml").is_file()
        and ((path / "run.json").exists() or (path / "checkpoints").exists())
    )


def sidecar(out: Path) -> Path:
    """The manifest of a one-file export (--out vectors.txt), hidden beside it."""
    return out.with_name(f".{out.name}.{MANIFEST}")


def manifest_path(out: Path) -> Path:
    """Where an export's manifest is: inside a folder export, beside a one-file export."""
    return out / MANIFEST if out.is_dir() else sidecar(out)


def export_format(path: Path) -> str | None:
    """The format an earlier export at `path` was written in, or None if it is not one."""
    try:
        return json.loads(manifest_path(path).read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def check_target(out: Path, format_name: str, *, force: bool) -> None:
    """Raise a usage error unless writing an export at `out` can lose nothing."""
    resolved = out.resolve()
    for path in [resolved, *resolved.parents]:
        if is_run_dir(path):
            part = resolved.relative_to(path).parts[:1]
            if not part:
                refuse(out, "is a run directory")
            if part[0] in RUN_PARTS:
                refuse(out, f"is part of the run {path} ({part[0]})")
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return  # an empty folder: nothing to lose
    if out.is_dir() and any(is_run_dir(p.parent) for p in out.rglob("config.yaml")):
        refuse(out, "contains a run directory")
    earlier = export_format(out)
    if earlier is None:
        refuse(out, f"exists and is not a tftrain export (no {manifest_path(out).name})")
    if earlier != format_name:
        refuse(out, f"holds a {earlier} export, not {format_name}")
    if not force:
        raise ConfigError(f"usage error: {out} already exists; pass --force to replace it")


def refuse(out: Path, why: str) -> None:
    raise ConfigError(
        f"usage error: will not export to {out}: it {why}; --force replaces only an earlier "
        f"export of the same format. Choose another --out."
    )
