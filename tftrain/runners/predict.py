"""`tftrain predict`: ask a trained model's family to answer a request; format rows or text."""

from __future__ import annotations

import io
import json

import click

from tftrain.errors import ConfigError
from tftrain.models.base import PredictRequest


def family_options() -> list[click.Option]:
    """One click option per flag any model family declares (`Model.predict_options`).

    The CLI parses every family's options; `predict_run` then accepts only those the run's
    own model declares. Defaults are left to each family (click's default is None).
    """
    from tftrain.registry import models

    declared: dict[str, list] = {}
    for name, cls in models.items():
        for option in cls.predict_options:
            declared.setdefault(option.flag, []).append((name, option))
    everyone = len(models.names())
    options = []
    for flag, users in sorted(declared.items()):
        first = users[0][1]
        kinds = {(o.type if isinstance(o.type, type) else type(o.type), o.nargs) for _, o in users}
        if len(kinds) > 1:
            raise TypeError(f"models declare predict option {flag} with different types")
        helps = {}
        for name, option in users:
            default = "" if option.default is None else f" (default {option.default})"
            helps.setdefault(option.help + default, []).append(name)
        parts = [
            text if len(helps) == 1 and len(users) == everyone else f"{text} [{', '.join(names)}]"
            for text, names in helps.items()
        ]
        options.append(
            click.Option(
                [flag],
                type=first.type,
                nargs=first.nargs,
                metavar=first.metavar,
                default=None,
                help="; ".join(parts),
            )
        )
    return options


def predict_request(model, inputs, given: dict) -> PredictRequest:
    """The request for this model: its declared options, as given or by its defaults."""
    declared = {option.key: option for option in type(model).predict_options}
    unknown = [key for key, value in given.items() if key not in declared and value is not None]
    if unknown:
        flags = ", ".join("--" + key.replace("_", "-") for key in unknown)
        valid = ", ".join(option.flag for option in declared.values()) or "none"
        raise ConfigError(
            f"usage error: {flags} is not an option of a {model.name} model (its options: {valid})"
        )
    options = {
        key: given[key] if given.get(key) is not None else option.default
        for key, option in declared.items()
    }
    return PredictRequest(inputs=tuple(inputs), options=options)


def predict_run(run_dir, inputs=(), given=None, *, checkpoint="latest", format_name="csv") -> str:
    """Restore a run's model and answer a `tftrain predict` call as CSV/JSON lines or text."""
    from tftrain.runners.restore import restore_run

    model = restore_run(run_dir, checkpoint).model
    answer = model.predict(predict_request(model, inputs, given or {}))
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
