"""Config fuzzer: seeded random mutations of every shipped config must validate or fail with a
`ConfigError` (exit 2) — never any other exception."""

from __future__ import annotations

import copy
import random
import traceback

import pytest

from tests.conftest import PROJECT
from tftrain.config import validate
from tftrain.config_reader import apply_overrides, read_with_includes
from tftrain.errors import ConfigError
from tftrain.schema import Sources

CONFIGS = sorted((PROJECT / "configs").glob("*.yaml"))
MUTATIONS_PER_CONFIG = 60
ODD_VALUES = [
    None,
    "x",
    "",
    "1e-4",
    [1],
    [],
    {"a": 1},
    {},
    True,
    0,
    -5,
    2**31,
    2**64,
    10**400,
    -(10**30),
    1e308,
    -1e-308,
    float("nan"),
    float("inf"),
    0.5,
    "../..",
    "/etc",
    "\x00",
    [[1, [2]]],
    {"type": "nope"},
]


def paths(tree, prefix=()):
    """Every (dotted) key path in a tree."""
    for key, value in tree.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths(value, (*prefix, key))


def mutate(tree: dict, rng: random.Random) -> str:
    """Change `tree` in place in one random way; returns what was done."""
    path = rng.choice(list(paths(tree)))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    action = rng.choice(["delete", "value", "value", "unknown", "nest", "section"])
    if action == "delete":
        del parent[path[-1]]
    elif action == "value":
        parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif action == "unknown":
        parent[rng.choice(["nmae", "typo_key", 3, None, "x.y"])] = rng.choice(ODD_VALUES)
    elif action == "nest":
        parent[path[-1]] = {"inner": parent[path[-1]]}
    else:
        tree[rng.choice(["train", "eval", "checkpoint", "device", "model", "data"])] = rng.choice(
            ODD_VALUES
        )
    return f"{action} {'.'.join(map(str, path))}"


def overrides(tree: dict, rng: random.Random) -> list[str]:
    """One random `--set` string, as a user would type it."""
    key = ".".join(map(str, rng.choice(list(paths(tree)))))
    text = rng.choice(
        [
            "null",
            "~",
            "[1, 2]",
            "{a: 1}",
            "-1",
            "1e999",
            "x",
            "''",
            "[",
            "*a",
            "!!python/object:os.system",
        ]
    )
    return [f"{key}={text}"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_mutated_configs_fail_only_with_config_errors(path):
    tree, lines = read_with_includes(path)
    validate(copy.deepcopy(tree), Sources(lines), default_name=path.stem)  # shipped: valid
    rng = random.Random(path.name)
    internal = []
    for _ in range(MUTATIONS_PER_CONFIG):
        mutated = copy.deepcopy(tree)
        done = [mutate(mutated, rng) for _ in range(rng.randint(1, 3))]
        try:
            sources = dict(lines)
            changes = overrides(mutated, rng) if rng.random() < 0.3 else []
            mutated = apply_overrides(mutated, changes, sources)
            validate(mutated, Sources(sources), default_name=path.stem)
        except ConfigError as error:
            assert str(error).startswith(("config error:", "usage error:")), str(error)
            assert len(str(error)) < 1000, str(error)
        except Exception:
            internal.append(f"{done} {changes}: {traceback.format_exc(limit=-3)}")
    assert not internal, "\n".join(internal[:5])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_mangled_yaml_text_fails_only_with_config_errors(path, tmp_path):
    from tftrain.config import load_config

    lines = path.read_text().splitlines()
    rng = random.Random(f"text {path.name}")
    junk = ["\t", ":", "[", "{", "&a", "*a", "<<: *a", "!!binary", "- ", "'", '"', "%YAML", "---"]
    internal = []
    for index in range(20):
        mangled = list(lines)
        for _ in range(rng.randint(1, 3)):
            line = rng.randrange(len(mangled))
            if rng.random() < 0.3:
                del mangled[line]
            else:
                column = rng.randint(0, len(mangled[line]))
                text = mangled[line]
                mangled[line] = text[:column] + rng.choice(junk) + text[column:]
        mutated = tmp_path / f"{index}.yaml"
        mutated.write_text("\n".join(mangled) + "\n")
        try:
            load_config(mutated)
        except ConfigError:
            pass
        except Exception:
            internal.append(f"{mutated.read_text()}\n{traceback.format_exc(limit=-3)}")
    assert not internal, "\n".join(internal[:3])
