"""The click commands `tftrain runs` and `tftrain sweep`; cli.py registers them."""

from __future__ import annotations

import json

import click

from tftrain.errors import ConfigError


@click.command("runs")
@click.argument("dirs", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of the runs.")
@click.option(
    "--sort", "sort_key", metavar="METRIC", help="Best first: valid.NAME, test.NAME, best, wall."
)
def runs_command(dirs, as_json, sort_key):
    """Table of the runs under DIRS (default runs/); `tftrain runs diff A B` compares two."""
    from tftrain.experiments import runs_table

    if dirs[:1] == ("diff",):
        if len(dirs) != 3:
            raise ConfigError("usage error: tftrain runs diff RUN_A RUN_B")
        click.echo(runs_table.diff_runs(dirs[1], dirs[2]))
        return
    rows = runs_table.list_runs(dirs or ["runs"])
    if sort_key:
        rows = runs_table.sort_runs(rows, sort_key)
    click.echo(json.dumps(rows, indent=1) if as_json else runs_table.format_table(rows))
