"""`tftrain export`: write a SavedModel, reload it, and prove it reproduces the trained model."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tftrain.errors import ConfigError, ExportError
from tftrain.lazy import tf
from tftrain.runners.progress import say
from tftrain.runners.rundir import RunDir


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


def export_run(run_dir, *, format_name="saved_model", out=None, checkpoint="latest", force=False, quiet=False):
    """Export and check; returns {"path", "examples", "max_difference"}."""
    from tftrain.runners.restore import load_trained
    from tftrain.runners.trainer import build_dataset

    run = RunDir(run_dir)
    config, model, checkpoint_path, step = load_trained(run_dir, checkpoint)
    out = Path(out) if out else run.export / format_name
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"usage error: {out} already exists; pass --force to replace it")
    examples = model.export_examples(build_dataset(config), config.export.check_examples)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        module = serving_module(model)
        tf.saved_model.save(module, str(staging), signatures=module.functions)
        difference = check_saved_model(staging, model, examples, atol=config.export.atol)
        info = {
            "format": format_name,
            "checkpoint": checkpoint_path,
            "step": step,
            "signatures": sorted(module.functions),
            "check_examples": len(next(iter(examples.values()))),
            "max_difference": difference,
        }
        (staging / "tftrain_export.json").write_text(json.dumps(info, indent=1))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    say(f"exported {checkpoint_path} (step {step}) to {out}", quiet=quiet)
    return {"path": str(out), "examples": info["check_examples"], "max_difference": difference}


def check_saved_model(path, model, examples: dict, *, atol: float) -> float:
    """Reload the SavedModel and compare its serving_default outputs with the live model."""
    expected = model.serving_functions()["serving_default"][1](**examples)
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in examples.items()})
    worst = 0.0
    for key, value in expected.items():
        want = np.asarray(value)
        have = np.asarray(got[key])
        if want.shape != have.shape:
            raise ExportError(f"export check failed: output {key!r} shape {have.shape} != {want.shape}")
        if want.dtype.kind in "fc":
            difference = float(np.max(np.abs(want - have))) if want.size else 0.0
        else:
            difference = float(np.any(want != have))
        worst = max(worst, difference)
        if difference > atol:
            raise ExportError(
                f"export check failed: reloaded output {key!r} differs from the trained model "
                f"by {difference:.3g} (allowed {atol:g})"
            )
    return worst
