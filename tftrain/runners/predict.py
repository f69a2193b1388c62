"""`tftrain predict`: run a trained model over a file of raw inputs, rows out as CSV or JSONL."""

from __future__ import annotations

import io
import json

import numpy as np

from tftrain.data.features import read_features


def predict_file(run_dir, input_file, *, checkpoint="latest", format_name="csv", batch_size=1024) -> str:
    from tftrain.runners.restore import load_trained

    _, model, _, _ = load_trained(run_dir, checkpoint)
    features = read_features(input_file, model.spec)
    serve = model.serving_functions()["serving_default"][1]
    parts = [serve(features=features[i : i + batch_size]) for i in range(0, len(features), batch_size)]
    outputs = {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in parts[0]}
    rows = prediction_rows(outputs, model.spec)
    return to_jsonl(rows) if format_name == "jsonl" else to_csv(rows)


def prediction_rows(outputs: dict, spec) -> list[dict]:
    if "class_ids" in outputs:
        names = spec.class_names
        rows = []
        for class_id, probabilities in zip(outputs["class_ids"], outputs["probabilities"], strict=True):
            row = {"class_id": int(class_id)}
            if names:
                row["class_name"] = names[int(class_id)]
            row["probability"] = round(float(probabilities[class_id]), 6)
            rows.append(row)
        return rows
    predictions = outputs["predictions"].reshape(len(outputs["predictions"]), -1)
    if predictions.shape[1] == 1:
        return [{"prediction": float(p[0])} for p in predictions]
    return [{f"prediction_{i}": float(v) for i, v in enumerate(p)} for p in predictions]


def to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    keys = list(rows[0])
    buffer.write(",".join(keys) + "\n")
    for row in rows:
        buffer.write(",".join(str(row[k]) for k in keys) + "\n")
    return buffer.getvalue()


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)
