"""`tftrain runs`: the run directories under some folders as one table, and `runs diff A B`.

Everything is read from the files a run already has (config.yaml, run.json, best/best.json,
metrics.jsonl) and from its run lock, so listing never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import yaml

from tftrain.errors import ConfigError

STATUSES = ("finished", "running", "failed", "stopped")


def find_runs(folders) -> list[Path]:
    """Run directories (holding config.yaml and run.json) at or under each folder, sorted."""
    found = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ConfigError(f"usage error: {folder} is not a directory")
        for root, dirs, files in os.walk(folder):
            if "config.yaml" in files and "run.json" in files:
                found.append(Path(root))
                dirs.clear()  # a run's own subfolders hold no runs
            else:
                dirs.sort()
    return sorted(set(found))


def lock_holder(lock_file: Path) -> int | None:
    """The pid holding the run lock (`fcntl.flock`), read from /proc/locks without taking
    the lock, so listing can never make a starting `fit` fail; None when nobody holds it."""
    try:
        info = lock_file.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for match in re.finditer(r"FLOCK\s+\S+\s+WRITE\s+(\d+)\s+(\S+)\s", table):
        if match.group(2) == device:
            return int(match.group(1))
    return None


def run_status(path: Path, record: dict) -> str:
    """finished / failed as run.json records; running while a process holds the lock;
    stopped otherwise (interrupted, killed, or never got past its start)."""
    if lock_holder(path / ".lock") is not None:
        return "running"
    recorded = record.get("status")
    return recorded if recorded in ("finished", "failed") else "stopped"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def wall_seconds(path: Path, record: dict, status: str) -> float | None:
    """From the first session's start to the end (or now, while running); a stopped or failed
    run ends at its last metrics line."""
    started = record.get("started_at")
    if started is None:
        return record.get("train_seconds")
    if status == "running":
        return round(time.time() - started, 1)
    if status == "finished" and record.get("finished_at"):
        return round(record["finished_at"] - started, 1)
    try:
        last = json.loads((path / "metrics.jsonl").read_text().splitlines()[-1])["time"]
    except (OSError, ValueError, IndexError, KeyError):
        return None
    return round(max(last - started, 0.0), 1)


def describe_run(path: Path, base: Path | None = None) -> dict:
    """One row: name, model, dataset, status, step, epoch, best, final metrics, wall time."""
    record = _read_json(path / "run.json")
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    best = _read_json(path / "best" / "best.json")
    name = str(path.relative_to(base)) if base and path != base else path.name
    status = run_status(path, record)
    return {
        "name": name,
        "path": str(path),
        "model": config.get("model", {}).get("type"),
        "dataset": config.get("data", {}).get("type"),
        "status": status,
        "step": record.get("step"),
        "epoch": record.get("epoch"),
        "best": {"metric": best["metric"], "value": best["value"]} if "metric" in best else None,
        "final": record.get("final", {}),
        "wall_seconds": wall_seconds(path, record, status),
        "failure": record.get("failure"),
    }


def list_runs(folders) -> list[dict]:
    rows = []
    for folder in map(Path, folders):
        rows += [describe_run(path, folder) for path in find_runs([folder])]
    return rows


def metric_value(row: dict, key: str):
    """A row's value of `valid.accuracy`, `test.loss`, `best`, `step`, `epoch`, `wall` or a
    bare metric name (its final valid value, else test)."""
    if key == "best":
        return (row["best"] or {}).get("value")
    if key in ("step", "epoch"):
        return row[key]
    if key == "wall":
        return row["wall_seconds"]
    split, _, name = key.rpartition(".")
    splits = [split] if split else ["valid", "test"]
    for split in splits:
        value = row["final"].get(split, {}).get(name)
        if value is not None:
            return value
    return None


def higher_is_better(rows: list[dict], metric: str) -> bool:
    """From the runs' model types (the registry knows each model's metrics)."""
    from tftrain.registry import models

    name = metric.rpartition(".")[2]
    if name in ("step", "epoch", "wall"):
        return name != "wall"  # the longest-trained first, the quickest first
    if name == "best":  # the metric each run kept its best checkpoint by
        name = next((row["best"]["metric"] for row in rows if row["best"]), name)
    for row in rows:
        try:
            return name in models.get(row["model"]).higher_is_better
        except ConfigError:  # an unknown model type: try the next run
            continue
    return name == "accuracy"


def sort_runs(rows: list[dict], metric: str) -> list[dict]:
    """Best first by `metric`; runs without it last."""
    if not any(metric_value(row, metric) is not None for row in rows):
        raise ConfigError(
            f"usage error: no run has the metric {metric!r}; use valid.NAME, test.NAME, best, "
            f"step, epoch or wall"
        )
    sign = -1 if higher_is_better(rows, metric) else 1
    return sorted(
        rows,
        key=lambda row: (
            metric_value(row, metric) is None,
            sign * (metric_value(row, metric) or 0),
        ),
    )


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """Aligned columns; one column per final metric any run has (valid.accuracy, ...)."""
    if not rows:
        return "no runs found"
    metrics = sorted(
        {
            f"{split}.{name}"
            for row in rows
            for split, values in row["final"].items()
            for name in values
        }
    )
    header = ["name", "model", "dataset", "status", "step", "epoch", "best", *metrics, "wall s"]
    table = [header]
    for row in rows:
        best = row["best"]
        table.append(
            [
                row["name"],
                _cell(row["model"]),
                _cell(row["dataset"]),
                row["status"],
                _cell(row["step"]),
                _cell(row["epoch"]),
                f"{best['metric']} {best['value']:.4g}" if best else "-",
                *(_cell(metric_value(row, key)) for key in metrics),
                _cell(row["wall_seconds"]),
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def diff_runs(first, second) -> str:
    """The config keys that differ and the final metrics side by side."""
    paths = [Path(first), Path(second)]
    for path in paths:
        if not (path / "config.yaml").exists():
            raise ConfigError(
                f"usage error: {path} is not a tftrain run directory (no config.yaml)"
            )
    configs = [_flatten(yaml.safe_load((p / "config.yaml").read_text()) or {}) for p in paths]
    rows = [describe_run(p) for p in paths]
    lines = [["", str(paths[0]), str(paths[1])]]
    changed = [
        k
        for k in sorted(set(configs[0]) | set(configs[1]))
        if configs[0].get(k) != configs[1].get(k)
    ]
    for key in changed:
        lines.append([key, *(json.dumps(c.get(key)) if key in c else "-" for c in configs)])
    if not changed:
        lines.append(["(configs are identical)", "", ""])
    lines.append(["status", rows[0]["status"], rows[1]["status"]])
    for key in ("step", "epoch", "best", "wall"):
        lines.append([key, *(_cell(metric_value(row, key)) for row in rows)])
    metrics = sorted(
        {f"{s}.{n}" for row in rows for s, values in row["final"].items() for n in values}
    )
    for key in metrics:
        lines.append([key, *(_cell(metric_value(row, key)) for row in rows)])
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
