"""TensorBoard HParams: a finished run's config keys and final metrics, for the HParams dashboard.

Written with the HParams plugin's summary API into `logs/` itself, so `tensorboard --logdir`
on a sweep's folder shows one session per trial: the flattened config as its hyper-parameters,
the `valid` and `train` scalars (in `logs/valid`, `logs/train`) and the final metrics
(`final/SPLIT/METRIC` here) as its metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

from tftrain.lazy import tf


def flatten(tree: dict, prefix: str = "") -> dict:
    """Dotted keys to HParams values (bool, int, float or str; anything else as JSON text)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:  # lists and None: the dashboard compares them as text
            flat[name] = json.dumps(value)
    return flat


def write_hparams(logdir, config, final: dict, *, step: int, started: float) -> None:
    """The session's hyper-parameters and the final metrics at `step` (SPLIT -> METRIC -> value)."""
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(str(Path(logdir)))
    with writer.as_default(step=step):
        hp.hparams(flatten(config.to_dict()), start_time_secs=started)
        for split, metrics in final.items():
            for name, value in metrics.items():
                tf.summary.scalar(f"final/{split}/{name}", value)
    writer.close()
