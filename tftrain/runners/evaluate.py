"""`tftrain eval`: restore a run's checkpoint and score a split (or every new checkpoint)."""

from __future__ import annotations

import time

from tftrain.errors import ConfigError, TftrainError
from tftrain.runners import checkpoint_files
from tftrain.runners.rundir import RunDir


def evaluation(run_dir, *, checkpoint="latest", overrides=()):
    """(restored run, its data, an `EpochLoop` that evaluates it)."""
    from tftrain.registry import build_dataset
    from tftrain.runners.epoch import EpochLoop
    from tftrain.runners.restore import restore_run
    from tftrain.runners.setup import RunSetup

    restored = restore_run(run_dir, checkpoint, overrides=overrides)
    dataset = build_dataset(restored.config)
    setup = RunSetup.for_evaluation(restored.config, dataset, restored.state)
    return restored, dataset, EpochLoop(setup)


def evaluate_run(
    run_dir,
    *,
    split: str = "test",
    checkpoint: str = "latest",
    plot=None,
    overrides=(),
) -> dict:
    """Metrics of a trained run on `split`, plus any reference figures the model offers.

    `overrides` change evaluation-time keys, e.g. the PTB tutorial's test model:
    `eval.batch_size=1`, `data.eval_num_steps=1`.
    """
    restored, dataset, loop = evaluation(run_dir, checkpoint=checkpoint, overrides=overrides)
    if not dataset.num_examples(split):
        raise ConfigError(f"usage error: this run's dataset has no {split!r} split")
    metrics = loop.evaluate(split)
    cap = restored.config.eval.max_batches
    max_examples = cap * loop.setup.eval_batch_size if cap else None
    extra = restored.model.evaluate_extra(dataset, split, plot=plot, max_examples=max_examples)
    metrics.update(extra)
    if restored.model.spec.task == "classification":
        metrics.update(class_figures(restored.model, dataset, split, loop, cap, plot, extra))
    return {**metrics, "split": split, "step": restored.step, "checkpoint": restored.path}


def class_figures(model, dataset, split, loop, max_batches, plot, extra) -> dict:
    """Macro F1, per-class figures and the confusion matrix (drawn if asked and not drawn)."""
    from tftrain.plots import draw_confusion
    from tftrain.runners.classification_report import evaluate_classes

    report = evaluate_classes(
        model, dataset, split, batch_size=loop.setup.eval_batch_size, max_batches=max_batches
    )
    if plot and "plot" not in extra:
        names = list(report["per_class"])
        draw_confusion(plot, report["confusion_matrix"], names, title=f"{split}: confusion")
        report["plot"] = str(plot)
    return report


def watch_run(run_dir, *, split="valid", timeout=600.0, poll=1.0, quiet=False):
    """Evaluate each new checkpoint as training writes it (the tutorials' separate eval job).

    Yields one metrics dict per checkpoint and writes them to `logs/eval`. Stops when the
    training run has ended and every checkpoint is scored, or after `timeout` seconds
    without a new checkpoint.
    """
    from tftrain.runners.progress import say
    from tftrain.runners.summaries import SummaryLog

    run = RunDir(run_dir)
    run.require()
    restored = loop = None
    summaries = SummaryLog(run.logs, enabled=True)
    seen: set[str] = set()
    last_new = time.monotonic()
    try:
        while True:
            fresh = [p for p in checkpoint_files.listed_complete(run.checkpoints) if p not in seen]
            for path in fresh:
                seen.add(path)
                try:
                    if restored is None:
                        restored, _, loop = evaluation(run_dir, checkpoint=path)
                    else:
                        restored.load(path)
                except TftrainError as error:  # rotated away or damaged: report, go on
                    say(f"warning: skipped {path}: {error}", quiet=quiet)
                    continue
                metrics = loop.evaluate(split)
                summaries.scalars("eval", restored.step, metrics)
                summaries.flush()
                run.append_metrics({"split": f"eval_{split}", "step": restored.step, **metrics})
                yield {**metrics, "split": split, "step": restored.step, "checkpoint": path}
            if fresh:
                last_new = time.monotonic()
                continue
            status = run.read_run().get("status")
            if status in ("finished", "failed", "interrupted"):
                return
            if time.monotonic() - last_new > timeout:
                say(f"no new checkpoint for {timeout:g} s; stopping", quiet=quiet)
                return
            time.sleep(poll)
    finally:
        summaries.close()
