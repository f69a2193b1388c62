"""The configs shipped inside the package: a bare name finds one, `tftrain configs` lists them.

They live in tftrain/configs (in the repository a symlink to configs/ at its root), so an
installed wheel has them too. Each starts with a one-line summary comment, which the list shows.
"""

from __future__ import annotations

from pathlib import Path

import click

from tftrain.errors import ConfigError
from tftrain.schema import nearest

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def shipped_configs() -> dict[str, Path]:
    """Name -> path of every shipped config, sorted by name."""
    return {path.stem: path for path in sorted(CONFIG_DIR.glob("*.yaml"))}


def summary(path: Path) -> str:
    """A config's first line without its '#', or "" when it does not start with a comment."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline().strip()
    return first.removeprefix("#").strip() if first.startswith("#") else ""


def shipped_config(name) -> Path | None:
    """The shipped config a bare name (with or without .yaml) means, or None."""
    path = Path(name)
    if path.parent != Path("."):
        return None  # a path with folders is never a shipped name
    return shipped_configs().get(path.stem if path.suffix in (".yaml", ".yml") else path.name)


def resolve_config(name) -> Path:
    """The config file `name` means: a file that exists wins, then a shipped config's name."""
    path = Path(name)
    try:
        if path.is_file():
            return path
    except OSError:
        return path  # a name the system refuses (too long, ...): the reader says why
    found = shipped_config(name)
    if found:
        return found
    if path.exists():
        return path  # not a regular file: the reader refuses it with its own message
    guess = nearest(path.stem, shipped_configs()) if path.parent == Path(".") else None
    hint = f"; did you mean the shipped config '{guess}'?" if guess else ""
    raise ConfigError(
        f"config error: config file not found: {name}{hint} (`tftrain configs` lists "
        f"the shipped ones)"
    )


@click.command("configs")
@click.argument("name", required=False)
def configs_command(name):
    """List the shipped configs; with NAME, print that file (to copy and edit).

    A shipped config's name works wherever a config file goes: tftrain fit quickstart.
    """
    shipped = shipped_configs()
    if name:
        path = shipped_config(name)
        if path is None:
            guess = nearest(Path(name).stem, shipped)
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise ConfigError(f"usage error: no shipped config named {name!r}{hint}")
        click.echo(path.read_text(encoding="utf-8"), nl=False)
        return
    width = max(map(len, shipped), default=0) + 2
    for name, path in shipped.items():
        click.echo(f"{name:{width}}{summary(path)}")
