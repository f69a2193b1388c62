"""The click commands `tftrain runs` and `tftrain sweep`; cli.py registers them."""

from __future__ import annotations

import json
import time

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


@click.command("sweep")
@click.argument("config_file", type=click.Path(dir_okay=False))
@click.option(
    "--grid",
    multiple=True,
    metavar="KEY=[V1,V2]",
    help="Values to try (repeatable; all combinations).",
)
@click.option(
    "--random",
    "random_count",
    type=click.IntRange(min=1),
    metavar="N",
    help="N random draws of the ranges below.",
)
@click.option(
    "--uniform", multiple=True, metavar="KEY=LO,HI", help="With --random: uniform in [LO, HI]."
)
@click.option(
    "--loguniform",
    multiple=True,
    metavar="KEY=LO,HI",
    help="With --random: log-uniform in [LO, HI].",
)
@click.option(
    "--choice", multiple=True, metavar="KEY=[V1,V2]", help="With --random: one of the values."
)
@click.option("--seed", type=int, help="Seed of the random draws (default: the config's seed).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key in every trial (repeatable).",
)
@click.option("--metric", help="Rank by this validation metric (default: checkpoint.best_metric).")
@click.option("--mode", type=click.Choice(["min", "max"]), help="Default: from the model's metric.")
@click.option("--out", type=click.Path(file_okay=False), help="Default: runs/NAME-sweep.")
@click.option(
    "--parallel",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Trials at once, each its own process.",
)
@click.option(
    "--early-stop",
    is_flag=True,
    help="Successive halving: the worse half stops at each rung of epochs.",
)
@click.option("--dry-run", is_flag=True, help="List the trials and exit.")
def sweep_command(config_file, grid, random_count, uniform, loguniform, choice, seed, overrides, metric, mode, out, parallel, early_stop, dry_run):  # fmt: skip
    """Train one run per point of a search space and rank them; run again to resume."""
    from pathlib import Path

    from tftrain.config import load_config
    from tftrain.experiments.space import trials
    from tftrain.experiments.sweep import Sweep, SweepFailed, format_ranking, sweep_metric

    config = load_config(config_file, overrides)
    points = trials(
        grid=grid,
        random_count=random_count,
        uniform=uniform,
        loguniform=loguniform,
        choice=choice,
        seed=config.seed if seed is None else seed,
    )
    if early_stop and config.train.max_steps is not None:
        raise ConfigError("usage error: --early-stop counts epochs; unset train.max_steps")
    if dry_run:
        for trial in points:
            click.echo(f"{trial.name}  {' '.join(trial.overrides())}")
        return
    metric, mode, overrides = sweep_metric(config_file, overrides, metric, mode)
    out = Path(out or Path("runs") / f"{config.name}-sweep")
    sweep = Sweep(
        config_file, points, overrides=overrides, metric=metric, mode=mode, out=out,
        parallel=parallel, echo=lambda line: click.echo(line, err=True),
        halving=config.train.epochs if early_stop else None,
    )  # fmt: skip
    click.echo(
        f"sweep: {len(points)} trial(s) of {config_file} in {out}, {parallel} at a time, "
        f"ranked by valid {metric} ({mode})",
        err=True,
    )
    started = time.perf_counter()
    results = sweep.run()
    click.echo(format_ranking(results, metric))
    click.echo(
        f"{out}/sweep.csv, {out}/sweep.jsonl; {time.perf_counter() - started:.1f} s", err=True
    )
    failed = [r["name"] for r in results if r["status"] not in ("finished", "pruned")]
    if failed:
        raise SweepFailed(
            f"{len(failed)} trial(s) did not finish: {', '.join(failed)}; see their sweep.log"
        )
