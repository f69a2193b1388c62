"""`tftrain fit --smoke`: the whole life cycle in seconds, for checking configs in CI.

Stages: fit a few steps with a checkpoint, resume and train a few more, evaluate, export and
check the reloaded export. Any failing stage raises, so the command exits non-zero.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from tftrain.config import with_overrides
from tftrain.errors import ConfigError, TftrainError, TrainingError

FIRST_STEPS = 3
MORE_STEPS = 2


def smoke_config(config, max_steps: int):
    return with_overrides(
        config,
        [
            "train.epochs=1000000",
            f"train.max_steps={max_steps}",
            "train.log_every_steps=1",
            "train.steps_per_loop=1",
            "train.validate_every_steps=null",
            "train.early_stopping.patience=0",
            "checkpoint.every_steps=2",
            "eval.max_batches=2",
            "export.check_examples=4",
        ],
    )


def smoke_test(config, run_dir=None, *, quiet=True):
    """Run every stage; yields one line per stage passed."""
    from tftrain.runners import make_trainer
    from tftrain.runners.evaluate import evaluate_run
    from tftrain.runners.export import export_run

    if run_dir is not None and Path(run_dir).exists():
        if not Path(run_dir).is_dir() or any(Path(run_dir).iterdir()):
            # Smoke rewrites config.yaml and run.json with its own few-step settings.
            raise ConfigError(
                f"usage error: --smoke never touches an existing run or folder, and {run_dir} "
                f"is not empty; give a new --run-dir, or none (a temporary directory)"
            )
    with contextlib.ExitStack() as stack:
        if run_dir is None:
            run_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tftrain-smoke-"))
        run_dir = str(Path(run_dir))
        stage = "fit"
        try:
            trainer = make_trainer(
                smoke_config(config, FIRST_STEPS), run_dir, quiet=quiet, local=True
            )
            trainer.fit()
            step = int(trainer.step.numpy())
            if step != FIRST_STEPS:
                raise TrainingError(f"trained {step} steps, expected {FIRST_STEPS}")
            yield f"smoke: fit ok ({step} steps, checkpoint {trainer.keeper.latest_path})"

            stage = "resume"
            total = FIRST_STEPS + MORE_STEPS
            trainer = make_trainer(smoke_config(config, total), run_dir, quiet=quiet, local=True)
            trainer.fit()
            step = int(trainer.step.numpy())
            if step != total:
                raise TrainingError(f"resumed run ended at step {step}, expected {total}")
            yield f"smoke: resume ok (continued from step {FIRST_STEPS} to {step})"

            stage = "eval"
            split = "test" if trainer.dataset.num_examples("test") else "valid"
            metrics = evaluate_run(run_dir, split=split)
            shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
            yield f"smoke: eval ok ({split}: {shown})"

            stage = "export"
            report = export_run(run_dir, force=True, quiet=True)
            yield (
                f"smoke: export ok (reloaded SavedModel matches, max difference "
                f"{report['max_difference']:.2e})"
            )
        except TftrainError as error:
            raise type(error)(f"smoke test failed at stage '{stage}': {error}") from None
