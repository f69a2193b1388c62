"""A trained model rebuilt from a run directory alone: config, data spec and a checkpoint."""

from __future__ import annotations

from tftrain import devices
from tftrain.data.base import DataSpec
from tftrain.errors import ConfigError
from tftrain.lazy import tf
from tftrain.runners.rundir import RunDir


def load_trained(run_dir, checkpoint: str = "latest", *, quiet=True):
    """(config, model) with the checkpoint's evaluation weights (EMA if the run used it)."""
    from tftrain.registry import build_model
    from tftrain.runners.checkpoints import CheckpointKeeper

    run = RunDir(run_dir)
    config = run.load_config()
    if not run.spec_file.exists():
        raise ConfigError(f"usage error: {run.spec_file} is missing; has `fit` run here?")
    devices.apply(config.device, report=lambda text: None)
    spec = DataSpec.from_json(run.spec_file.read_text())
    model = build_model(config, spec)
    variables = model.network.trainable_variables
    shadows = [tf.Variable(v, trainable=False) for v in variables] if config.train.ema_decay else []
    step = tf.Variable(0, dtype=tf.int64)
    tracked = tf.train.Checkpoint(model=model.network, ema=shadows, step=step)
    keeper = CheckpointKeeper(tracked, latest_dir=run.checkpoints, best_dir=run.best, max_to_keep=1)
    path = keeper.resolve(checkpoint)
    tracked.restore(path).expect_partial().assert_existing_objects_matched()
    for shadow, variable in zip(shadows, variables, strict=False):
        variable.assign(shadow)  # evaluate and serve with the averaged weights
    return config, model, path, int(step.numpy())
