"""`tftrain export`: write an artefact, reload it, and prove it reproduces the trained model.

Generic formats live here (a SavedModel of the model's serving signatures); a model family can
add its own through `Model.export_formats()` (e.g. word2vec's text vectors). Every writer gets
an `ExportContext` and a fresh staging directory that replaces the output only on success.
"""

from __future__ import annotations

import functools
import inspect
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from tftrain.errors import ConfigError, ExportError
from tftrain.lazy import tf
from tftrain.runners.export_target import MANIFEST, check_target, sidecar
from tftrain.runners.progress import say
from tftrain.runners.rundir import RunDir
from tftrain.schema import nearest


class ExportContext:
    """What a format writer may use: the trained model, the run's config, the data, options."""

    def __init__(self, *, model, config, checkpoint: str, step: int, options: dict, out=None):
        self.model = model
        self.out = Path(out) if out else None  # the destination; a writer may read its suffix
        self.config = config
        self.checkpoint = checkpoint
        self.step = step
        self.options = options

    @functools.cached_property
    def dataset(self):
        from tftrain.registry import build_dataset

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
    difference = check_saved_model(
        directory, context.model, examples, atol=context.config.export.atol
    )
    return {
        "signatures": sorted(module.functions),
        "check_examples": len(next(iter(examples.values()))),
        "max_difference": difference,
    }


def serving_concrete_function(model):
    """The serving_default function traced for its input signature."""
    signature, function = model.serving_functions()["serving_default"]
    return tf.function(function, input_signature=signature).get_concrete_function()


def frozen_serving_function(model):
    """serving_default with every variable folded into a constant, and its output names."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = serving_concrete_function(model)
    return convert_variables_to_constants_v2(concrete), sorted(concrete.structured_outputs)


def write_tflite(directory: Path, context: ExportContext) -> dict:
    """A TensorFlow Lite flatbuffer of serving_default, checked in the TFLite interpreter."""
    # Freeze first: converting the live SavedModel keeps Keras 3 variables as TFLite resource
    # variables, which the interpreter leaves uninitialised (NaN outputs) on TF 2.21.
    frozen, names = frozen_serving_function(context.model)
    signature = context.model.serving_functions()["serving_default"][0]

    class Frozen(tf.Module):
        @tf.function(input_signature=signature, autograph=False)
        def serve(self, *tensors):
            return dict(zip(names, tf.nest.flatten(frozen(*tensors)), strict=True))

    module = Frozen()
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures={"serving_default": module.serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, ["serving_default"])
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # the converter raises many types; all mean "not convertible"
            raise ExportError(f"TFLite conversion failed: {str(error).splitlines()[0]}") from None
    path = directory / "model.tflite"
    path.write_bytes(flatbuffer)
    examples = context.examples()
    difference = check_tflite(path, context.model, examples, atol=context.config.export.atol)
    return {
        "file": path.name,
        "check_examples": len(next(iter(examples.values()))),
        "max_difference": difference,
    }


def run_tflite(path, examples: dict) -> dict:
    """Run a .tflite file's serving signature on a batch."""
    with warnings.catch_warnings():  # tf.lite.Interpreter warns it will move to ai-edge-litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    # Inputs are converted with batch 1; resize them to this batch before allocating.
    inputs = interpreter.get_signature_list()["serving_default"]["inputs"]
    details = {d["name"]: d for d in interpreter.get_input_details()}
    for name in inputs:
        tensor = next(d for key, d in details.items() if key.endswith(name) or name in key)
        interpreter.resize_tensor_input(tensor["index"], list(np.shape(examples[name])))
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner("serving_default")
    return runner(**{k: np.asarray(v) for k, v in examples.items()})


def check_tflite(path, model, examples: dict, *, atol: float) -> float:
    expected = model.serving_functions()["serving_default"][1](**examples)
    got = run_tflite(path, examples)
    return compare_outputs(expected, got, atol=atol, what="TFLite model")


def write_frozen_graph(directory: Path, context: ExportContext) -> dict:
    """One GraphDef with the variables folded into constants (TF2's convert_variables_to_constants)."""
    frozen, names = frozen_serving_function(context.model)
    graph_def = frozen.graph.as_graph_def()
    if any(node.op in ("VarHandleOp", "ReadVariableOp") for node in graph_def.node):
        raise ExportError("frozen graph still holds variables after conversion")
    (directory / "frozen_graph.pb").write_bytes(graph_def.SerializeToString())
    # Feed and fetch by tensor name: argument name -> placeholder, output name -> tensor.
    function = context.model.serving_functions()["serving_default"][1]
    arguments = list(inspect.signature(function).parameters)
    if len(arguments) != len(frozen.inputs):
        raise ExportError("frozen_graph export needs a serving function of plain tensor arguments")
    signature = {
        "inputs": {name: t.name for name, t in zip(arguments, frozen.inputs, strict=True)},
        "outputs": {name: t.name for name, t in zip(names, frozen.outputs, strict=True)},
    }
    (directory / "signature.json").write_text(json.dumps(signature, indent=1))
    examples = context.examples()
    difference = check_frozen_graph(
        directory, context.model, examples, atol=context.config.export.atol
    )
    return {
        "file": "frozen_graph.pb",
        "check_examples": len(next(iter(examples.values()))),
        "max_difference": difference,
        **signature,
    }


def run_frozen_graph(directory, examples: dict) -> dict:
    """Import frozen_graph.pb into a fresh graph and run it on `examples` by tensor name."""
    signature = json.loads((Path(directory) / "signature.json").read_text())
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((Path(directory) / "frozen_graph.pb").read_bytes())

    def import_graph():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(import_graph, [])
    names = sorted(signature["outputs"])
    function = wrapped.prune(
        feeds=[wrapped.graph.as_graph_element(signature["inputs"][k]) for k in examples],
        fetches=[wrapped.graph.as_graph_element(signature["outputs"][k]) for k in names],
    )
    values = function(*[tf.constant(v) for v in examples.values()])
    return dict(zip(names, values, strict=True))


def check_frozen_graph(directory, model, examples: dict, *, atol: float) -> float:
    expected = model.serving_functions()["serving_default"][1](**examples)
    got = run_frozen_graph(directory, examples)
    return compare_outputs(expected, got, atol=atol, what="frozen graph")


GENERIC_FORMATS = {
    "saved_model": write_saved_model,
    "tflite": write_tflite,
    "frozen_graph": write_frozen_graph,
}
CHECKS = {
    "saved_model": lambda path, model, examples, atol: check_saved_model(
        path, model, examples, atol=atol
    ),
    "tflite": lambda path, model, examples, atol: check_tflite(
        Path(path) / "model.tflite", model, examples, atol=atol
    ),
    "frozen_graph": lambda path, model, examples, atol: check_frozen_graph(
        path, model, examples, atol=atol
    ),
}


def check_export(run_dir, export_dir, *, checkpoint=None) -> dict:
    """Re-run the comparison of an existing export against the run's model."""
    from tftrain.runners.restore import restore_run

    export_dir = Path(export_dir)
    info_file = export_dir / MANIFEST
    if not info_file.exists():
        raise ConfigError(
            f"usage error: {export_dir} is not a tftrain export (no {info_file.name})"
        )
    info = json.loads(info_file.read_text())
    restored = restore_run(run_dir, checkpoint or info["checkpoint"])
    config, model = restored.config, restored.model
    if info["format"] not in CHECKS:
        raise ConfigError(f"usage error: no re-check for format {info['format']!r}")
    context = ExportContext(
        model=model, config=config, checkpoint=restored.path, step=restored.step, options={}
    )
    examples = context.examples()
    difference = CHECKS[info["format"]](export_dir, model, examples, config.export.atol)
    return {
        "path": str(export_dir),
        "format": info["format"],
        "check_examples": len(next(iter(examples.values()))),
        "max_difference": difference,
    }


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
    from tftrain.runners.restore import restore_run

    run = RunDir(run_dir)
    out = Path(out) if out else run.export / format_name
    check_target(out, format_name, force=force)  # before the slow restore, and before writing
    restored = restore_run(run_dir, checkpoint)
    config, model = restored.config, restored.model
    checkpoint_path, step = restored.path, restored.step
    formats = {**GENERIC_FORMATS, **model.export_formats()}
    if format_name not in formats:
        guess = nearest(format_name, formats)
        hint = f" Did you mean '{guess}'?" if guess else ""
        raise ConfigError(
            f"usage error: unknown export format {format_name!r} for a {config.model.type} "
            f"model; valid: {', '.join(sorted(formats))}.{hint}"
        )
    context = ExportContext(
        model=model,
        config=config,
        checkpoint=checkpoint_path,
        step=step,
        options=options or {},
        out=out,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        report = formats[format_name](staging, context)
        info = {"format": format_name, "checkpoint": checkpoint_path, "step": step, **report}
        written = list(staging.iterdir())
        # A one-file format asked for as a file (--out vectors.txt) is that file, not a folder;
        # its manifest sits beside it.
        as_file = len(written) == 1 and written[0].is_file() and written[0].suffix == out.suffix
        if out.is_symlink():
            out.unlink()  # the link only, never what it points at
        elif out.exists():
            check_target(out, format_name, force=force)  # still an export of this format?
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        sidecar(out).unlink(missing_ok=True)
        manifest = sidecar(out) if as_file else staging / MANIFEST
        manifest.write_text(json.dumps(info, indent=1, default=str))
        (written[0] if as_file else staging).rename(out)
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
