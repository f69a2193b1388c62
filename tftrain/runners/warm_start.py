"""Warm starts: initialise chosen variables of a new model from another run's checkpoint.

The successor of the tutorials' "restore a subset of variables" (`Saver(var_list=...)`).
The source run is rebuilt from its own config and data spec, so variables are matched by
their Keras paths without the top-level model name (`hidden_0/kernel`, `logits/bias`), which
`include` / `exclude` glob patterns select.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from tftrain.errors import ConfigError


def variable_name(variable) -> str:
    """A variable's Keras path without the model's own name: "mlp/hidden_0/kernel" -> "hidden_0/kernel"."""
    path = getattr(variable, "path", None) or variable.name.split(":")[0]
    return path.split("/", 1)[1] if "/" in path else path


def source_run(checkpoint: str) -> tuple[Path, str]:
    """(run directory, checkpoint spec) for a run directory or a checkpoint prefix inside one."""
    path = Path(checkpoint)
    if (path / "config.yaml").exists():
        return path, "latest"
    for parent in path.parents:
        if (parent / "config.yaml").exists():
            return parent, str(path)
    raise ConfigError(
        f"config error: 'train.init_from.checkpoint' {checkpoint!r} is neither a run directory "
        f"nor a checkpoint inside one"
    )


def selected(name: str, include, exclude) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in include) and not any(
        fnmatch.fnmatchcase(name, p) for p in exclude
    )


def warm_start(model, init_from) -> dict:
    """Copy matching variables into `model`; returns {"restored": [...], "fresh": [...]}."""
    from tftrain.runners.restore import restore_run

    run_dir, which = source_run(init_from.checkpoint)
    restored = restore_run(run_dir, which)
    source, path = restored.model, restored.path
    available = {variable_name(v): v for v in source.network.trainable_variables}
    restored, fresh, mismatched = [], [], []
    for variable in model.network.trainable_variables:
        name = variable_name(variable)
        origin = available.get(name)
        if origin is None or not selected(name, init_from.include, init_from.exclude):
            fresh.append(name)
        elif tuple(origin.shape) != tuple(variable.shape):
            mismatched.append(
                f"{name}: checkpoint {tuple(origin.shape)} vs model {tuple(variable.shape)}"
            )
        else:
            variable.assign(origin)
            restored.append(name)
    if mismatched:
        raise ConfigError(
            "config error: warm start from "
            f"{path} cannot restore variables whose shapes differ: {'; '.join(mismatched)}. "
            "Exclude them with train.init_from.exclude (e.g. ['logits/*'])."
        )
    if not restored:
        raise ConfigError(
            f"config error: warm start from {path} matched no variables; checkpoint has "
            f"{sorted(available)}"
        )
    return {"checkpoint": path, "restored": restored, "fresh": fresh}
