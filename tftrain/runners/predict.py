"""`tftrain predict`: ask a trained model's family to answer a request; format rows or text."""

from __future__ import annotations

import io
import json

from tftrain.models.base import PredictRequest


def predict_run(run_dir, request: PredictRequest, *, checkpoint="latest", format_name="csv") -> str:
    from tftrain.runners.restore import load_trained

    _, model, _, _ = load_trained(run_dir, checkpoint)
    answer = model.predict(request)
    if isinstance(answer, str):
        return answer if answer.endswith("\n") else answer + "\n"
    return to_jsonl(answer) if format_name == "jsonl" else to_csv(answer)


def to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    keys = list(rows[0])
    buffer.write(",".join(keys) + "\n")
    for row in rows:
        buffer.write(",".join(csv_cell(row.get(k, "")) for k in keys) + "\n")
    return buffer.getvalue()


def csv_cell(value) -> str:
    text = str(value)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)
