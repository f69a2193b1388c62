"""Text classifiers take raw strings: in-graph tokenisation for serving, `predict --text`.

Any classifier trained on `text_classification` data (its spec has `extra["text"]`) uses these
helpers, so the exported SavedModel and `tftrain predict` tokenise with the run's saved
vocabulary exactly as training did.
"""

from __future__ import annotations

from pathlib import Path

from tftrain.data.base import DataSpec, apply_transform
from tftrain.errors import ConfigError
from tftrain.lazy import tf
from tftrain.models.base import PredictOption, prediction_rows

TEXT_OPTION = PredictOption("--text", "a text to classify (text classifiers)", metavar="TEXT")


def is_text(spec: DataSpec) -> bool:
    return bool(spec.extra.get("text")) and bool(spec.vocabulary)


def attach_table(network, spec: DataSpec):
    """Hang the token -> id table off the network, so SavedModel tracks it as a resource."""
    from tftrain.preprocessing.text import vocabulary_table

    network.text_table = vocabulary_table(spec.vocabulary, unknown=1)
    return network


def text_ids(model, texts):
    """A 1-D string tensor -> int32 [batch, max_length] ids, as the dataset encoded them."""
    from tftrain.preprocessing.text import texts_to_ids

    settings = model.spec.extra["text"]
    return texts_to_ids(
        texts,
        model.network.text_table,
        lowercase=settings["lowercase"],
        split_punctuation=settings["split_punctuation"],
        length=settings["max_length"],
    )


def text_serving_functions(model) -> dict:
    """serving_default takes strings ("text"); "token_ids" takes ids already encoded."""

    def serve_text(text):
        ids = text_ids(model, text)
        outputs, _ = model.forward(apply_transform(ids, model.spec), training=False)
        return model.serving_outputs(outputs)

    strings = [tf.TensorSpec([None], tf.string, name="text")]
    ids = [tf.TensorSpec([None, model.spec.extra["text"]["max_length"]], tf.int32, name="ids")]
    return {"serving_default": (strings, serve_text), "token_ids": (ids, model.serve)}


def refuse_text_option(request) -> None:
    """`--text` on a model that was not trained on texts is a usage error, not ignored."""
    if request.options.get("text"):
        raise ConfigError("usage error: --text is for runs trained on text_classification data")


def read_text_lines(path: str) -> list[str]:
    """One text per non-blank line of a UTF-8 file."""
    from tftrain.data.text_files import decode

    if not Path(path).is_file():
        raise ConfigError(f"usage error: no such file: {path}")
    return [line for line in decode(Path(path)).splitlines() if line.strip()]


def predict_texts(model, request) -> list[dict]:
    """Label and probability (top-k) for `--text` and every line of the input files."""
    texts = [request["text"]] if request.options.get("text") else []
    for path in request.inputs:
        texts += read_text_lines(path)
    if not texts:
        raise ConfigError('usage error: give --text "..." or text files with one text per line')
    signature, function = text_serving_functions(model)["serving_default"]
    serve = tf.function(function, input_signature=signature)
    size = request.batch_size
    rows = []
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        outputs = {k: v.numpy() for k, v in serve(tf.constant(chunk)).items()}
        for row, text in zip(
            prediction_rows(outputs, model.spec, top_k=request["top_k"]), chunk, strict=True
        ):
            rows.append({**row, "text": text})
    return rows


def text_export_examples(dataset, count: int) -> dict:
    """Raw strings from the data, to check an export against the live model."""
    import numpy as np

    for split in ("test", "valid", "train"):
        texts = dataset.texts(split)[:count]
        if texts:
            return {"text": np.array(texts, dtype=object)}
    raise ConfigError("usage error: the dataset has no texts to check the export with")
