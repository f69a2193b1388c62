"""What the data must satisfy before the first training step, so a run never fails after an
epoch of work (or at the final evaluation) on something knowable at the start."""

from __future__ import annotations

from tftrain.data.base import SPLITS, ArrayDataset
from tftrain.errors import ConfigError, DataError


def check_batch_size(dataset, batch_size: int) -> None:
    """A batch larger than the training split is refused, naming both numbers: capping it
    silently would change the run's optimisation without the config saying so."""
    count = dataset.num_examples("train")
    if count is not None and count < batch_size:
        raise ConfigError(
            f"config error: train.batch_size={batch_size} is larger than the training split "
            f"({count} examples); set train.batch_size to at most {count}"
        )


def check_split_shapes(dataset, data_config) -> None:
    """Every split held in memory has the training split's shape per example."""
    if not isinstance(dataset, ArrayDataset):
        return  # streamed splits come from one reader and one spec
    shapes = {}
    for split in SPLITS:
        if dataset.num_examples(split):
            shapes[split] = tuple(dataset.arrays(split)[0].shape[1:])
    train = shapes.get("train")
    for split, shape in shapes.items():
        if shape != train:
            raise DataError(
                f"the {split} split ({source(data_config, split)}) has examples of shape "
                f"{list(shape)}, the train split ({source(data_config, 'train')}) "
                f"{list(train)}; every split needs the same features (columns)"
            )


def source(data_config, split: str) -> str:
    """The file a split comes from, where the config names one."""
    key = "path" if split == "train" else f"{split}_path"
    path = getattr(data_config, key, None)
    return f"data.{key}: {path}" if path else f"data.type: {data_config.type}"
