"""Reading config files: YAML with a line number per key, `include:` files, `--set` overrides.

Config files are small, so anything large is refused before it is parsed: a file over 1 MB, a
path that is not a regular file (`/dev/zero`, a FIFO), include chains deeper than 8 or more
than 64 files, and YAML whose aliases expand to more than 100,000 values (an alias "bomb").
Errors quote paths, line numbers and key names, never the text of a file that is not a config.
"""

from __future__ import annotations

import copy
import re
import stat
from pathlib import Path

import yaml

from tftrain.errors import ConfigError, decode_utf8

MAX_BYTES = 1_000_000
MAX_INCLUDE_DEPTH = 8
MAX_FILES = 64
MAX_VALUES = 100_000  # YAML nodes after aliases are expanded
MAX_NESTING = 64
# PyYAML problems quote the offending text; token names and single characters (a tab) are safe.
SAFE_QUOTE = re.compile(r"^(<[a-z ]+>|\\?.)$")


def shorten(path) -> str:
    """A path for an error message: a very long one is cut in the middle."""
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-100:]}"


def unreadable(path, error: Exception) -> ConfigError:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return ConfigError(f"config error: cannot read config file {shorten(path)}: {reason}")


def read_text(path: Path) -> str:
    """A config file's text, refusing special files and files over MAX_BYTES."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"config error: config file not found: {shorten(path)}") from None
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        raise unreadable(path, error) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"config error: {path} is not a regular file")
    too_big = ConfigError(
        f"config error: {path} is larger than {MAX_BYTES // 1_000_000} MB; "
        "a config is a short YAML file"
    )
    if info.st_size > MAX_BYTES:
        raise too_big
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # the file may have grown since stat
    except OSError as error:
        raise unreadable(path, error) from None
    if len(raw) > MAX_BYTES:
        raise too_big
    return decode_utf8(raw, path, lambda message: ConfigError(f"config error: {message}"))


def redact(problem: str) -> str:
    """A YAML error's problem with quoted file content replaced by '...'."""

    def keep(match):
        return match.group(0) if SAFE_QUOTE.match(match.group(2)) else "'...'"

    return re.sub(r"(['\"])(.*?)\1", keep, problem)


def check_size(root, path: Path) -> None:
    """Refuse a document that nests too deeply or whose aliases expand to too many values."""
    count = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(
                f"config error: {path} expands to more than {MAX_VALUES:,} values "
                "(YAML aliases repeated inside each other?)"
            )
        if depth > MAX_NESTING:
            raise ConfigError(f"config error: {path} nests more than {MAX_NESTING} levels deep")
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def key_lines(node, prefix: str, path: str, out: dict) -> None:
    """Record "file, line N" for every mapping key under a composed YAML node."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        out[key] = f"{path}, line {key_node.start_mark.line + 1}"
        key_lines(value_node, f"{key}.", path, out)


def read_yaml(path: Path) -> tuple[dict, dict]:
    """One YAML file as (tree, {dotted key: "file, line N"})."""
    loader = yaml.SafeLoader(read_text(path))
    try:
        node = loader.get_single_node()
        if node is not None:
            check_size(node, path)  # before anything expands the aliases
        tree = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = redact(getattr(error, "problem", None) or "cannot parse")
        raise ConfigError(f"config error: invalid YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"config error: {path} nests too deeply") from None
    finally:
        loader.dispose()
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config error: {path} must hold a mapping of sections at the top")
    lines: dict[str, str] = {}
    key_lines(node, "", str(path), lines)
    return tree, lines


def parse_value(text: str, override: str):
    """The YAML value of one `--set`, with the same limits as a file."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        check_size(node, f"--set {override}")
        return loader.construct_document(node)
    except (yaml.YAMLError, RecursionError):
        raise ConfigError(f"usage error: cannot parse the value in --set {override}") from None
    finally:
        loader.dispose()


def deep_merge(base: dict, top: dict) -> dict:
    """`top` wins; nested mappings merge key by key."""
    merged = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_with_includes(path: Path, chain: tuple[Path, ...] = (), files: list | None = None):
    """A config file with its `include:` files merged underneath it (the file itself wins).

    Returns (tree, {dotted key: where it was set})."""
    path = Path(path)
    files = [] if files is None else files  # every file read for this config
    try:
        resolved = path.resolve()
    except (OSError, ValueError) as error:
        raise unreadable(path, error) from None
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"config error: include cycle: {cycle}")
    if len(chain) > MAX_INCLUDE_DEPTH:
        raise ConfigError(
            f"config error: includes nest more than {MAX_INCLUDE_DEPTH} deep at {path}"
        )
    files.append(resolved)
    if len(files) > MAX_FILES:
        raise ConfigError(f"config error: a config may read at most {MAX_FILES} included files")
    tree, lines = read_yaml(path)
    includes = tree.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(
            f"config error: 'include' must be a file name or a list of them "
            f"({lines.get('include', path)})"
        )
    merged: dict = {}
    sources: dict = {}
    for include in includes:
        sub_tree, sub_lines = read_with_includes(path.parent / include, (*chain, resolved), files)
        merged = deep_merge(merged, sub_tree)
        sources.update(sub_lines)
    merged = deep_merge(merged, tree)
    sources.update(lines)
    return merged, sources


def apply_overrides(tree: dict, overrides, sources: dict) -> dict:
    """Apply `--set a.b=value` strings; values are parsed as YAML scalars or flow lists.

    `null` sets a key to null, which `schema.build` reads as "not set" (its default)."""
    tree = copy.deepcopy(tree)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"usage error: --set expects KEY=VALUE, got {override!r}")
        value = parse_value(text, override) if text.strip() else None
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
        sources[key] = f"--set {override}"
    return tree
