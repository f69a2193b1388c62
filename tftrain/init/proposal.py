"""A proposed config (what init guessed, why, and each key with its comment) and its YAML text."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import yaml

COMMENT_COLUMN = 30  # comments line up here, as in the hand-written configs


@dataclass
class Setting:
    """One config key; `optional` ones are written commented out, as keys a user may change."""

    key: str
    value: object
    comment: str = ""
    optional: bool = False


@dataclass
class Proposal:
    """Everything init decided about one file or folder."""

    summary: str  # the config's first line: one sentence, at most 100 characters
    name: str
    task: str  # the guessed task, as `--task` spells it
    reason: str  # why this task: one sentence
    facts: list[str] = field(default_factory=list)  # sizes read, columns chosen
    model: list[Setting] = field(default_factory=list)
    data: list[Setting] = field(default_factory=list)
    train: list[Setting] = field(default_factory=list)
    checkpoint: list[Setting] = field(default_factory=list)
    eval: list[Setting] = field(default_factory=list)


def batch_size(rows: int, largest: int = 32) -> int:
    """`largest`, or less so that a small training split (~70% of rows) still fills batches."""
    return max(1, min(largest, int(0.7 * rows) // 2))


def flow(value) -> str:
    """A value as one line of YAML (flow style), quoted only where YAML needs it."""
    text = yaml.safe_dump(
        value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False
    )
    return text.removesuffix("\n...\n").strip()


def setting_line(setting: Setting, indent: str = "  ") -> str:
    line = f"{indent}{'# ' if setting.optional else ''}{setting.key}: {flow(setting.value)}"
    if setting.comment:
        line = f"{line.ljust(COMMENT_COLUMN - 1)} # {setting.comment}"
    return line


def shorten(summary: str, limit: int = 100) -> str:
    """The summary cut to `limit` characters, still one sentence ending with a period."""
    summary = summary.rstrip(".") + "."
    if len(summary) <= limit:
        return summary
    return summary[: limit - 3].rstrip(" ,:;") + "..."


def render(proposal: Proposal, command: str) -> str:
    """The config file's text: summary, why, facts, then the sections with their comments."""
    lines = [f"# {shorten(proposal.summary)}"]
    lines.append(f"# Written by `{command}`.")
    why = f"Task: {proposal.task} (change with --task), because {proposal.reason}."
    for paragraph in [why, *proposal.facts]:
        lines += [f"# {line}" for line in textwrap.wrap(paragraph, 96, subsequent_indent="  ")]
    lines += [
        "# Check it quickly with `tftrain fit THIS_FILE --smoke`, then train with",
        "# `tftrain fit THIS_FILE`; any key can be overridden with --set KEY=VALUE.",
        f"name: {flow(proposal.name)}",
        "seed: 0",
    ]
    for section in ("model", "data", "train", "eval", "checkpoint"):
        settings = getattr(proposal, section)
        if settings:
            lines += ["", f"{section}:", *(setting_line(s) for s in settings)]
    return "\n".join(lines) + "\n"
