"""A trained run rebuilt from its directory alone: config, data spec and a checkpoint.

The one way `eval`, `predict`, `export` and warm starts restore a model: the same `RunState`
(so the same checkpoint layout) as training, restored with the same fallback past damaged
checkpoints, holding its evaluation weights (the EMA, if the run used one).
"""

from __future__ import annotations

from dataclasses import dataclass

from tftrain import devices
from tftrain.data.base import DataSpec
from tftrain.errors import ConfigError
from tftrain.registry import build_model
from tftrain.runners.checkpoints import CheckpointKeeper
from tftrain.runners.progress import say
from tftrain.runners.run_state import RunState
from tftrain.runners.rundir import RunDir


@dataclass
class Restored:
    """A run's config, data spec and restored state, and which checkpoint it came from."""

    config: object
    spec: DataSpec
    state: RunState
    keeper: CheckpointKeeper
    path: str

    @property
    def model(self):
        return self.state.model

    @property
    def step(self) -> int:
        return int(self.state.step.numpy())

    def load(self, path: str) -> None:
        """Restore another checkpoint of the same run into this state (eval --watch)."""
        self.keeper.restore(path)
        self.state.keep_evaluation_weights()
        self.path = path


def restore_run(run_dir, checkpoint: str = "latest", *, overrides=()) -> Restored:
    """Rebuild the run's model and state and restore `checkpoint` (latest, best or a path)."""
    run = RunDir(run_dir)
    config = run.load_config(overrides)
    if not run.spec_file.exists():
        raise ConfigError(f"usage error: {run.spec_file} is missing; has `fit` run here?")
    devices.apply(config.device, report=lambda text: None)
    spec = DataSpec.from_json(run.spec_file.read_text())
    model = build_model(config, spec)
    # The schedule is built as in training; the recorded steps per epoch keep its shape.
    steps_per_epoch = run.read_run().get("steps_per_epoch") or 1
    state = RunState(config, model, steps_per_epoch=steps_per_epoch)
    # Read only: damaged files are named, never moved; the state file is never rewritten.
    keeper = CheckpointKeeper(
        state.checkpoint,
        latest_dir=run.checkpoints,
        best_dir=run.best,
        max_to_keep=1,
        repair=False,
    )
    if checkpoint == "latest":
        path = keeper.restore_latest(warn=say)  # warnings even when quiet: they name damage
        if path is None:
            raise ConfigError(f"usage error: no checkpoint in {run.checkpoints}; has `fit` run?")
    else:
        path = keeper.resolve(checkpoint)
        keeper.restore(path)
    state.keep_evaluation_weights()
    return Restored(config=config, spec=spec, state=state, keeper=keeper, path=path)
