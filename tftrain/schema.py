"""Typed config trees: dataclass -> validated frozen object, with located, helpful errors.

Every section of a config is a frozen dataclass. `build` turns a plain YAML tree into one,
checking each key and value; problems raise `ConfigError` naming the dotted key, the file and
line the value came from, the bad value and the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any, Literal, get_args, get_origin

from tftrain.errors import ConfigError


class FieldError(ValueError):
    """Raised by a section's `__post_init__` to reject a value; `build` adds its location."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


def limits(*, ge=None, gt=None, le=None, lt=None) -> dict:
    """Field metadata for numeric bounds: `field(default=1, metadata=limits(ge=1))`."""
    return {"ge": ge, "gt": gt, "le": le, "lt": lt}


class Sources:
    """Where each dotted key came from: "configs/x.yaml, line 7" or "--set train.epochs=3"."""

    def __init__(self, mapping: dict[str, str] | None = None, fallback: str = ""):
        self.mapping = dict(mapping or {})
        self.fallback = fallback

    def where(self, key: str) -> str:
        while key:
            if key in self.mapping:
                return self.mapping[key]
            key = key.rpartition("[")[0] if key.endswith("]") else key.rpartition(".")[0]
        return self.fallback


def nearest(word: str, choices) -> str | None:
    """The closest valid name to a misspelled one, or None."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def shown(value, width: int = 60) -> str:
    """A value's repr, cut short: errors stay one line even for a huge value."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def shown_key(key) -> str:
    """A key quoted for an error, unless it is not a name (a line of some other file)."""
    text = str(key)
    return f"'{text}'" if re.fullmatch(r"[\w.\-\[\] ]{1,60}", text) else "(not a valid name)"


def accepts_none(annotation) -> bool:
    origin = get_origin(annotation)
    union = origin in (typing.Union, types.UnionType) and type(None) in get_args(annotation)
    return annotation is Any or union


def fail(key: str, message: str, sources: Sources) -> typing.NoReturn:
    where = sources.where(key)
    location = f" ({where})" if where else ""
    raise ConfigError(f"config error: {message}{location}")


def describe_type(annotation) -> str:
    origin = get_origin(annotation)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return " or ".join(describe_type(a) for a in inner) + " or null"
    if origin is tuple:
        return f"a list of {describe_type(get_args(annotation)[0]).removeprefix('a ')}s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(annotation):
        return "a mapping of options"
    return str(annotation)


def convert(value: Any, annotation, key: str, sources: Sources) -> Any:
    """Check `value` against a type annotation and return it in canonical form."""
    origin = get_origin(annotation)

    def wrong() -> typing.NoReturn:
        fail(key, f"'{key}' must be {describe_type(annotation)}, got {shown(value)}", sources)

    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(value, option, key, sources)
            except ConfigError:
                continue
        wrong()
    if origin is Literal:
        if value in get_args(annotation):
            return value
        guess = nearest(str(value), [str(a) for a in get_args(annotation)])
        hint = f"; did you mean '{guess}'?" if guess else ""
        fail(key, f"'{key}' must be {describe_type(annotation)}, got {shown(value)}{hint}", sources)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        wrong()
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        wrong()
    if annotation is float:
        number = None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:  # YAML 1.1 reads "1e-4" as a string
                number = float(value)
            except (ValueError, OverflowError):
                pass
        if number is None or not math.isfinite(number):  # inf and nan are never settings
            wrong()
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        wrong()
    if origin is tuple:
        (item_type, *_) = get_args(annotation)
        if not isinstance(value, list | tuple):
            value = [value]
        return tuple(
            convert(item, item_type, f"{key}[{index}]", sources) for index, item in enumerate(value)
        )
    if origin is dict:
        if not isinstance(value, dict):
            wrong()
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            wrong()
        return build(annotation, value, key, sources)
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")


def check_limits(value, metadata, key: str, sources: Sources) -> None:
    """Numeric bounds on a value, or on each item of a list."""
    if isinstance(value, tuple):
        for index, item in enumerate(value):
            check_limits(item, metadata, f"{key}[{index}]", sources)
        return
    if value is None or not isinstance(value, int | float):
        return
    tests = {
        "ge": (lambda v, b: v >= b, "at least"),
        "gt": (lambda v, b: v > b, "greater than"),
        "le": (lambda v, b: v <= b, "at most"),
        "lt": (lambda v, b: v < b, "less than"),
    }
    for name, (test, words) in tests.items():
        bound = metadata.get(name)
        if bound is not None and not test(value, bound):
            fail(key, f"'{key}' must be {words} {bound}, got {value!r}", sources)


def apply_preset(cls, raw: dict, prefix: str, sources: Sources) -> dict:
    """Sections with a `PRESETS` table fill unset keys from `preset: NAME`."""
    presets = getattr(cls, "PRESETS", None)
    name = raw.get("preset")
    if not presets or not name:
        return raw
    if not isinstance(name, str) or name not in presets:
        guess = nearest(str(name), presets)
        hint = f"; did you mean '{guess}'?" if guess else ""
        fail(
            f"{prefix}preset",
            f"unknown preset {shown(name)} for '{prefix}preset' (valid: {', '.join(presets)}){hint}",
            sources,
        )
    return {**presets[name], **raw}


def build(cls, raw: dict, prefix: str, sources: Sources):
    """Validate a plain mapping into the frozen dataclass `cls`."""
    dotted = f"{prefix}." if prefix else ""
    raw = apply_preset(cls, raw, dotted, sources)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for name in raw:
        if name not in fields:
            guess = nearest(str(name), fields)
            hint = f"; did you mean '{dotted}{guess}'?" if guess else ""
            fail(f"{dotted}{name}", f"unknown key {shown_key(dotted + str(name))}{hint}", sources)
    values = {}
    # null where a value is required means "not set": the default applies (`--set key=null`)
    for name, field in fields.items():
        key = f"{dotted}{name}"
        if name in raw and (raw[name] is not None or accepts_none(hints[name])):
            value = convert(raw[name], hints[name], key, sources)
            check_limits(value, field.metadata, key, sources)
            values[name] = value
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            fail(key, f"missing required key '{key}'", sources)
    try:
        return cls(**values)
    except FieldError as error:
        fail(f"{dotted}{error.key}", f"'{dotted}{error.key}': {error.message}", sources)


def to_plain(value) -> Any:
    """A frozen config tree as plain dicts and lists, ready for YAML."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value
