"""The `tftrain` command line: parse, load the config, call the library, map errors to exit codes.

Exit codes: 0 success, 2 usage or config error, 1 runtime error (bad data, NaN stop, I/O).
Errors print one or two lines on stderr; `--debug` shows the Python traceback too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from tftrain import __version__
from tftrain.errors import ConfigError, TftrainError
from tftrain.experiments import commands as experiment_commands
from tftrain.init.command import init_command
from tftrain.shipped_configs import configs_command

overrides_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set train.epochs=3 (repeatable).",
)
quiet_option = click.option("--quiet", is_flag=True, help="No progress output.")
checkpoint_option = click.option(
    "--checkpoint",
    default="latest",
    show_default=True,
    help="Which checkpoint: latest, best, or a checkpoint path.",
)
run_dir_argument = click.argument("run_dir", type=click.Path(file_okay=False))
gpus_option = click.option(
    "--gpus", metavar="IDS", help="GPUs to use, e.g. 0,1 (CUDA_VISIBLE_DEVICES; wins over config)."
)


class Group(click.Group):
    """Turns tftrain's own errors into a short message and an exit code."""

    def invoke(self, ctx):
        debug = "--debug" in sys.argv[1:]
        try:
            return super().invoke(ctx)
        except TftrainError as error:
            if debug:
                raise
            click.echo(f"tftrain: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("tftrain: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except (OSError, MemoryError) as error:
            if debug:
                raise
            click.echo(f"tftrain: {type(error).__name__}: {error}", err=True)
            ctx.exit(1)
        except Exception as error:  # a bug: say so briefly, keep the traceback for --debug
            if debug:
                raise
            click.echo(
                f"tftrain: internal error: {type(error).__name__}: {error} "
                f"(run with --debug for the traceback)",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tftrain")
@click.option(
    "--debug", is_flag=True, help="Show Python tracebacks and TensorFlow's C++ log lines."
)
def cli(debug):
    """Train, evaluate and export TensorFlow models from one YAML config."""
    if debug:  # TensorFlow's C++ start-up lines too, unless TF_CPP_MIN_LOG_LEVEL says otherwise
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")


def main():
    cli(prog_name="tftrain")


# --- fit ----------------------------------------------------------------------------------


@cli.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@overrides_option
@click.option("--run-dir", type=click.Path(file_okay=False), help="Default: runs/NAME.")
@quiet_option
@click.option("--smoke", is_flag=True, help="A seconds-long check of the whole life cycle.")
@gpus_option
@click.option("--workers", metavar="HOST:PORT,...", help="multi_worker: every worker (TF_CONFIG).")
@click.option("--worker-index", type=click.IntRange(min=0), help="multi_worker: this worker.")
@click.option("--cluster", type=click.Choice(["slurm", "tf_config"]), help="Sets device.cluster.")
@click.option(
    "--extra-epochs",
    type=click.IntRange(min=1),
    help="Extend a finished run by N epochs beyond where it stopped.",
)
def fit(
    config_file,
    overrides,
    run_dir,
    quiet,
    smoke,
    gpus,
    workers,
    worker_index,
    cluster,
    extra_epochs,
):
    """Train the model a config describes; resumes if the run directory has checkpoints."""
    from tftrain.cluster import join_cluster
    from tftrain.config import load_config
    from tftrain.data.base import check_input_paths
    from tftrain.devices import command_line_overrides

    overrides = command_line_overrides(
        overrides, gpus=gpus, workers=workers, worker_index=worker_index
    )
    if cluster:
        overrides.append(f"device.cluster={cluster}")
    config = load_config(config_file, overrides)
    check_input_paths(config.data)  # before TensorFlow loads: missing data is a quick exit 2
    if extra_epochs:
        from tftrain.runners.rundir import RunDir

        record = RunDir(run_dir or Path("runs") / config.name).read_run()
        if "epoch" not in record:
            raise ConfigError("usage error: --extra-epochs needs a run that has finished an epoch")
        extended = [f"train.epochs={record['epoch'] + extra_epochs}", "train.max_steps=null"]
        config = load_config(config_file, [*overrides, *extended])
    if smoke:
        from tftrain.runners.smoke import smoke_test

        for line in smoke_test(config, run_dir, quiet=quiet):
            click.echo(line)
        return
    from tftrain.runners import make_trainer

    run_dir = run_dir or str(Path("runs") / config.name)
    results = make_trainer(join_cluster(config), run_dir, quiet=quiet).fit()
    click.echo(f"run directory: {run_dir}")
    for split, metrics in results.items():
        click.echo(f"{split}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


# --- devices and launch (tftrain/devices.py, tftrain/launch.py) ----------------------------


@cli.command("devices")
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@overrides_option
@gpus_option
def devices_command(config_file, overrides, gpus):
    """Show the devices TensorFlow sees and the device settings a config puts in force."""
    from tftrain import devices
    from tftrain.config import DeviceConfig, load_config

    overrides = devices.command_line_overrides(overrides, gpus=gpus)
    if overrides and not config_file:
        raise ConfigError("usage error: --set needs a CONFIG file")
    device = load_config(config_file, overrides).device if config_file else DeviceConfig()
    for line in devices.apply(device, report=lambda text: None) + devices.describe(device):
        click.echo(line)


@cli.command("launch")
@click.argument("config_file", type=click.Path(dir_okay=False))
@overrides_option
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--ps", default=0, type=click.IntRange(min=0), help="parameter_server: ps tasks.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Default: runs/NAME.")
@quiet_option
def launch_command(config_file, overrides, workers, ps, run_dir, quiet):
    """Train on N local worker processes (127.0.0.1), streaming their logs."""
    from tftrain.launch import launch

    launch(config_file, workers=workers, ps=ps, overrides=overrides, run_dir=run_dir, quiet=quiet)


# --- eval ---------------------------------------------------------------------------------


@cli.command("eval")
@run_dir_argument
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test")
@checkpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of metrics.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw a PNG where the model can.")
@click.option("--watch", is_flag=True, help="Evaluate each new checkpoint as training writes it.")
@click.option(
    "--timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="With --watch: stop after this many seconds without a new checkpoint.",
)
@quiet_option
@overrides_option
def eval_command(run_dir, split, checkpoint, as_json, plot, watch, timeout, quiet, overrides):
    """Score a trained run on a split (or, with --watch, every checkpoint as it appears)."""
    from tftrain.runners.evaluate import evaluate_run, watch_run

    if watch:
        for metrics in watch_run(run_dir, split=split, timeout=timeout, quiet=quiet):
            if as_json:
                click.echo(json.dumps(metrics))
            else:
                shown = "  ".join(
                    f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)
                )
                click.echo(f"step {metrics['step']}: {shown}")
        return
    metrics = evaluate_run(
        run_dir,
        split=split,
        checkpoint=checkpoint,
        plot=plot,
        overrides=overrides,
    )
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        from tftrain.runners.classification_report import report_lines

        for key, value in metrics.items():
            if key not in ("per_class", "confusion_matrix"):
                click.echo(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
        if "per_class" in metrics:
            click.echo("\n".join(report_lines(metrics)))


# --- export -------------------------------------------------------------------------------


@cli.command()
@run_dir_argument
@click.option(
    "--format",
    "format_name",
    default="saved_model",
    show_default=True,
    help="saved_model, tflite, frozen_graph, or a format the model family adds.",
)
@click.option("--out", type=click.Path(), help="Default: RUN_DIR/export/FORMAT.")
@checkpoint_option
@click.option("--binary", is_flag=True, help="Binary variant of the format, where one exists.")
@click.option("--force", is_flag=True, help="Replace an existing export.")
@click.option(
    "--check",
    "check_dir",
    type=click.Path(exists=True),
    help="Re-run the comparison on an existing export directory instead of exporting.",
)
@quiet_option
def export(run_dir, format_name, out, checkpoint, binary, force, check_dir, quiet):
    """Write an artefact and check that it reloads and reproduces the trained model.

    Formats: saved_model, tflite, frozen_graph, and those a model family adds.
    """
    from tftrain.runners.export import check_export, export_run

    if check_dir:
        report = check_export(run_dir, check_dir)
        click.echo(f"checked {report['format']} export {report['path']}")
    else:
        report = export_run(
            run_dir,
            format_name=format_name,
            out=out,
            checkpoint=checkpoint,
            force=force,
            quiet=quiet,
            options={"binary": binary},
        )
        click.echo(f"exported {format_name} to {report['path']}")
    if "max_difference" in report:
        click.echo(
            f"checked: reloaded export matches the trained model on {report['check_examples']} "
            f"examples (max abs difference {report['max_difference']:.2e})"
        )


# --- predict ------------------------------------------------------------------------------


class PredictCommand(click.Command):
    """`tftrain predict`, whose family options (--beam-width, --prime, ...) the models declare."""

    def get_params(self, ctx):
        from tftrain.runners.predict import family_options

        return [*super().get_params(ctx), *family_options()]


@cli.command(cls=PredictCommand)
@run_dir_argument
@click.argument("inputs", nargs=-1, type=click.Path())
@checkpoint_option
@click.option("--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option(
    "--format", "format_name", type=click.Choice(["csv", "jsonl"]), help="Default: from --output."
)
@click.pass_context
def predict(ctx, run_dir, inputs, checkpoint, output, format_name, **options):
    """Run a trained model: on feature files (CSV/NPZ/NPY), or as its family's options say."""
    from click.core import ParameterSource

    from tftrain.runners.predict import predict_run

    if format_name is None:
        format_name = "jsonl" if output and output.endswith((".jsonl", ".json")) else "csv"
    given = {
        key: value
        for key, value in options.items()
        if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE
    }
    text = predict_run(run_dir, inputs, given, checkpoint=checkpoint, format_name=format_name)
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


# --- models and config --------------------------------------------------------------------


@cli.command("models")
@click.argument("name", required=False)
@overrides_option
def models_command(name, overrides):
    """List the model types; with NAME, describe one (its layers, where the model can)."""
    from tftrain.registry import models

    if name is None:
        for name, cls in models.items():
            click.echo(f"{name:12} {cls.description}")
        return
    click.echo(models.get(name, key="NAME").describe(overrides))


@cli.command("datasets")
def datasets_command():
    """List the dataset types."""
    from tftrain.registry import datasets

    for name, cls in datasets.items():
        click.echo(f"{name:18} {cls.description}")


@cli.group("config")
def config_group():
    """Show or check a config."""


@config_group.command("show")
@click.argument("config_file", type=click.Path(dir_okay=False))
@overrides_option
def config_show(config_file, overrides):
    """Print the fully resolved config, every default included."""
    from tftrain.config import load_config

    click.echo(load_config(config_file, overrides).to_yaml(), nl=False)


@config_group.command("validate")
@click.argument("config_file", type=click.Path(dir_okay=False))
@overrides_option
def config_validate(config_file, overrides):
    """Check a config; exit 2 with the problem if it is invalid."""
    from tftrain.config import load_config

    config = load_config(config_file, overrides)
    click.echo(f"{config_file}: valid ({config.model.type} on {config.data.type})")


# --- data ---------------------------------------------------------------------------------


@cli.group("data")
def data_group():
    """Convert or inspect a dataset (from a config, or a bare image folder / .npz / .csv)."""


@data_group.command("convert")
@click.argument("source", type=click.Path())
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--to", "format_name", type=click.Choice(["tfrecord"]), default="tfrecord")
@click.option("--shards", default=1, show_default=True, type=click.IntRange(min=1))
@overrides_option
def data_convert(source, out_dir, format_name, shards, overrides):
    """Write SOURCE's splits to OUT_DIR as sharded TFRecord files plus spec.json."""
    from tftrain.runners.data_tools import convert

    info = convert(source, out_dir, shards=shards, overrides=overrides)
    for split, entry in info["splits"].items():
        click.echo(f"{split}: {entry['count']} examples in {len(entry['files'])} shard(s)")
    click.echo(f"wrote {out_dir}/spec.json; read it with data.type: tfrecord, data.path: {out_dir}")


@data_group.command("inspect")
@click.argument("source", type=click.Path())
@overrides_option
@click.option("--grid", type=click.Path(dir_okay=False), help="Write a PNG grid of images.")
@click.option("--augmented", is_flag=True, help="Grid of training images after data.augment.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="train")
@click.option("--count", default=36, show_default=True, type=click.IntRange(min=1))
def data_inspect(source, overrides, grid, augmented, split, count):
    """Split sizes, shapes, dtypes, label counts and value ranges; optionally a PNG grid."""
    from tftrain.runners.data_tools import inspect

    click.echo(
        inspect(
            source, overrides=overrides, grid=grid, augmented=augmented, split=split, count=count
        )
    )


cli.add_command(configs_command)
cli.add_command(init_command)  # tftrain/init: a config from a data file or folder

# --- experiments (tftrain/experiments) ------------------------------------------------------

cli.add_command(experiment_commands.runs_command)
cli.add_command(experiment_commands.sweep_command)

__all__ = ["cli", "main", "ConfigError"]
