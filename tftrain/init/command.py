"""The `tftrain init` command (cli.py registers it); the work is in tftrain.init.detect."""

from __future__ import annotations

from pathlib import Path

import click

from tftrain.errors import ConfigError

TASKS = (
    "classification",
    "regression",
    "text_classification",
    "forecasting",
    "language_model",
    "word2vec",
    "seq2seq",
)


@click.command("init")
@click.argument("data", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@click.option("--task", type=click.Choice(TASKS), help="The task, instead of init's guess.")
@click.option("--label", metavar="COLUMN", help="The label (or forecast target) column.")
@click.option("--text", metavar="COLUMN", help="The column of texts to classify.")
@click.option("--time", metavar="COLUMN", help="The time column of a series.")
@click.option("--model", metavar="TYPE", help="The model type, instead of init's choice.")
def init_command(data, output, force, task, label, text, time, model):
    """Look at DATA (a file or folder) and write a commented config that trains on it."""
    from tftrain.init.detect import make_config

    if output and Path(output).exists() and not force:
        raise ConfigError(f"usage error: {output} exists; pass --force to replace it")
    config = make_config(data, task=task, label=label, text=text, time=time, model=model)
    if not output:
        click.echo(config, nl=False)
        return
    Path(output).write_text(config)
    click.echo(f"wrote {output}: {config.splitlines()[0][2:]}", err=True)
    click.echo(f"check it with: tftrain fit {output} --smoke", err=True)
