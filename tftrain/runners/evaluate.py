"""`tftrain eval`: restore a run's checkpoint and score a split."""

from __future__ import annotations

from tftrain.runners.rundir import RunDir


def evaluate_run(
    run_dir, *, split: str = "test", checkpoint: str = "latest", quiet=False, plot=None
) -> dict:
    """Metrics of a trained run on `split`, plus any reference figures the model offers."""
    from tftrain.errors import ConfigError
    from tftrain.runners.trainer import Trainer

    config = RunDir(run_dir).load_config()
    trainer = Trainer(config, run_dir, quiet=quiet, for_training=False)
    if not trainer.dataset.num_examples(split):
        raise ConfigError(f"usage error: this run's dataset has no {split!r} split")
    path = trainer.restore(checkpoint)
    metrics = trainer.evaluate(split)
    with trainer.averaged_weights():
        metrics.update(trainer.model.evaluate_extra(trainer.dataset, split, plot=plot))
    return {**metrics, "split": split, "step": int(trainer.step.numpy()), "checkpoint": path}
