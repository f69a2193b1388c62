"""`tftrain export`: write an artefact, reload it, and prove it reproduces the trained model.

Generic formats live here (a SavedModel of the model's serving signatures); a model family can
add its own through `Model.export_formats()` (e.g. word2vec's text vectors). Every writer gets
an `ExportContext` and a fresh staging directory that replaces the output only on success.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tftrain.errors import ConfigError, ExportError
from tftrain.lazy import tf
from tftrain.runners.progress import say
from tftrain.runners.rundir import RunDir
from tftrain.schema import nearest


class ExportContext:
    """What a format writer may use: the trained model, the run's config, the data, options."""

    def __init__(self, *, model, config, checkpoint: str, step: int, options: dict):
        self.model = model
        self.config = config
        self.checkpoint = checkpoint
        self.step = step
        self.options = options

    @functools.cached_property
    def dataset(self):
        from tftrain.runners.trainer import build_dataset

        return build_dataset(self.config)

    def examples(self) -> dict:
        """Inputs for serving_default used to check an artefact against the live model."""
        return self.model.export_examples(self.dataset, self.config.export.check_examples)


def serving_module(model):
    """A tf.Module holding the network and one tf.function per serving signature."""

    class Serving(tf.Module):
        def __init__(self):
            super().__init__(name="tftrain_serving")
            self.network = model.network
            self.functions = {
                name: tf.function(function, input_signature=signature)
                for name, (signature, function) in model.serving_functions().items()
            }

    return Serving()


def write_saved_model(directory: Path, context: ExportContext) -> dict:
    module = serving_module(context.model)
    tf.saved_model.save(module, str(directory), signatures=module.functions)
    examples = context.examples()
    difference = check_saved_model(directory, context.model, examples, atol=context.config.export.atol)
    return {
        "signatures": sorted(module.functions),
        "check_examples": len(next(iter(examples.values()))),
        "max_difference": difference,
    }


GENERIC_FORMATS = {"saved_model": write_saved_model}


def export_run(
    run_dir,
    *,
    format_name="saved_model",
    out=None,
    checkpoint="latest",
    force=False,
    quiet=False,
    options=None,
) -> dict:
    """Export and check; returns the writer's report plus "path"."""
    from tftrain.runners.restore import load_trained

    run = RunDir(run_dir)
    config, model, checkpoint_path, step = load_trained(run_dir, checkpoint)
    formats = {**GENERIC_FORMATS, **model.export_formats()}
    if format_name not in formats:
        guess = nearest(format_name, formats)
        hint = f" Did you mean '{guess}'?" if guess else ""
        raise ConfigError(
            f"usage error: unknown export format {format_name!r} for a {config.model.type} "
            f"model; valid: {', '.join(sorted(formats))}.{hint}"
        )
    out = Path(out) if out else run.export / format_name
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ConfigError(f"usage error: {out} already exists; pass --force to replace it")
    context = ExportContext(
        model=model, config=config, checkpoint=checkpoint_path, step=step, options=options or {}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        report = formats[format_name](staging, context)
        info = {"format": format_name, "checkpoint": checkpoint_path, "step": step, **report}
        (staging / "tftrain_export.json").write_text(json.dumps(info, indent=1, default=str))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    say(f"exported {checkpoint_path} (step {step}) as {format_name}", quiet=quiet)
    return {"path": str(out), **info}


def check_saved_model(path, model, examples: dict, *, atol: float) -> float:
    """Reload the SavedModel and compare its serving_default outputs with the live model."""
    expected = model.serving_functions()["serving_default"][1](**examples)
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in examples.items()})
    return compare_outputs(expected, got, atol=atol, what="reloaded SavedModel")


def compare_outputs(expected: dict, got: dict, *, atol: float, what: str) -> float:
    """Largest absolute difference over every output; ExportError if beyond `atol`."""
    worst = 0.0
    for key, value in expected.items():
        want = np.asarray(value)
        have = np.asarray(got[key])
        if want.shape != have.shape:
            raise ExportError(
                f"export check failed: {what} output {key!r} has shape {have.shape}, "
                f"the trained model {want.shape}"
            )
        if want.dtype.kind in "fc":
            difference = float(np.max(np.abs(want - have))) if want.size else 0.0
        else:
            difference = float(np.any(want != have))
        worst = max(worst, difference)
        if difference > atol:
            raise ExportError(
                f"export check failed: {what} output {key!r} differs from the trained model "
                f"by {difference:.3g} (allowed {atol:g})"
            )
    return worst
