"""`tftrain eval`: restore a run's checkpoint and score a split."""

from __future__ import annotations

from tftrain.runners.rundir import RunDir


def evaluate_run(run_dir, *, split: str = "test", checkpoint: str = "latest", quiet=False) -> dict:
    """Metrics of a trained run on `split`, plus any reference figures the model offers."""
    from tftrain.errors import ConfigError
    from tftrain.runners.trainer import Trainer

    config = RunDir(run_dir).load_config()
    trainer = Trainer(config, run_dir, quiet=quiet, for_training=False)
    if not trainer.dataset.num_examples(split):
        raise ConfigError(f"usage error: this run's dataset has no {split!r} split")
    path = trainer.restore(checkpoint)
    metrics = trainer.evaluate(split)
    eval_arrays = trainer.dataset.arrays(split)
    train_arrays = trainer.dataset.arrays("train")
    if eval_arrays is not None and train_arrays is not None:
        metrics.update(trainer.model.reference_metrics(train_arrays, eval_arrays))
    return {**metrics, "split": split, "step": int(trainer.step.numpy()), "checkpoint": path}
