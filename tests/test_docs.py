"""The docs stay true: every config key is in the reference, the README keeps its quickstart."""

from __future__ import annotations

import dataclasses
import re

from tests.conftest import PROJECT
from tftrain.config import SECTIONS


def keys_of(cls, prefix=""):
    for field in dataclasses.fields(cls):
        kind = field.type if isinstance(field.type, type) else None
        yield f"{prefix}{field.name}"
        nested = getattr(cls, "__annotations__", {}).get(field.name)
        default = (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else None
        )
        if dataclasses.is_dataclass(default):
            yield from keys_of(type(default), f"{prefix}{field.name}.")
        del kind, nested


def test_every_config_key_is_in_the_reference():
    text = (PROJECT / "docs" / "config.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9.]+)`", text))
    # Rows may name several sibling keys: "`optimizer.beta_1`, `beta_2`".
    leaves = {name.rsplit(".", 1)[-1] for name in documented}
    missing = []
    for section, cls in SECTIONS.items():
        for key in keys_of(cls):
            container = any(name.startswith(f"{key}.") for name in documented)
            if key not in documented and key.rsplit(".", 1)[-1] not in leaves and not container:
                missing.append(f"{section}.{key}")
    assert not missing, f"keys missing from docs/config.md: {missing}"


def test_readme_quickstart_is_exactly_make_run_and_make_test():
    text = (PROJECT / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("##", 1)[0]
    block = quickstart.split("```", 2)[1]
    assert block.strip().splitlines() == ["make run", "make test"]
