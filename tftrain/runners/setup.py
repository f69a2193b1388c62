"""One run setup for every command: devices, seeds, precision, the data, the strategy, the
model and its `RunState`, built in the order TensorFlow needs.

`fit` (any strategy), `--smoke`, `launch`'s processes, `eval` and the parameter-server
coordinator all start here, so a setting means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from tftrain import devices
from tftrain.errors import ConfigError
from tftrain.lazy import keras, tf
from tftrain.registry import build_dataset, build_model
from tftrain.runners import precision
from tftrain.runners.data_checks import check_batch_size, check_split_shapes
from tftrain.runners.progress import say
from tftrain.runners.run_state import RunState


@dataclass
class RunSetup:
    """What a run is made of, once the device options are in force."""

    config: object
    dataset: object
    spec: object
    strategy: object
    distributed: bool  # training under a strategy other than the default
    state: RunState
    batch_size: int
    eval_batch_size: int
    steps_per_epoch: int | None
    drop_remainder: bool

    @property
    def model(self):
        return self.state.model

    @classmethod
    def for_evaluation(cls, config, dataset, state) -> RunSetup:
        """The setup of a restored run that is only evaluated, on one device."""
        batch_size = config.train.batch_size
        return cls(
            config=config,
            dataset=dataset,
            spec=dataset.spec(),
            strategy=tf.distribute.get_strategy(),
            distributed=False,
            state=state,
            batch_size=batch_size,
            eval_batch_size=config.eval.batch_size or batch_size,
            steps_per_epoch=None,
            drop_remainder=state.model.needs_fixed_batch,
        )


def prepare(config, *, quiet: bool = False, for_training: bool = True, make_strategy=None):
    """Apply the device options, seed everything, and build data, model and run state.

    Strategies are for training; eval runs on one device. A caller that makes its own
    strategy (the parameter-server coordinator) passes `make_strategy`, called once the
    device options are in force.
    """
    train = config.train
    devices.apply(config.device, report=lambda text: say(text, quiet=quiet))
    distributed = for_training and config.device.strategy != "default"
    if distributed and (train.grad_accumulation_steps > 1 or train.mixed_precision):
        raise ConfigError(
            "config error: train.grad_accumulation_steps and train.mixed_precision are not "
            "supported with device.strategy other than 'default' yet"
        )
    if make_strategy is not None:
        strategy = make_strategy()
    else:
        strategy = devices.strategy(config.device if distributed else None)
    if train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    policy = precision.set_policy(train)  # before the model builds its layers
    dataset = build_dataset(config)
    spec = dataset.spec()
    check_batch_size(dataset, train.batch_size)
    check_split_shapes(dataset, config.data)
    # Model, optimizer and checkpointed variables live under the strategy; the default
    # strategy's scope costs nothing.
    with strategy.scope():
        model = build_model(config, spec)
    batch_size = train.batch_size
    drop_remainder = model.needs_fixed_batch
    steps_per_epoch = dataset.steps("train", batch_size, drop_remainder=drop_remainder)
    state = RunState(
        config, model, steps_per_epoch=steps_per_epoch, policy=policy, strategy=strategy
    )
    return RunSetup(
        config=config,
        dataset=dataset,
        spec=spec,
        strategy=strategy,
        distributed=distributed,
        state=state,
        batch_size=batch_size,
        eval_batch_size=config.eval.batch_size or batch_size,
        steps_per_epoch=steps_per_epoch,
        drop_remainder=drop_remainder,
    )
