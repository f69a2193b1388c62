"""YAML -> includes merged -> `--set` overrides -> one validated, frozen `Config`.

This is the only place a config is parsed; everything else receives typed objects.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from tftrain import registry
from tftrain.config_reader import apply_overrides, read_with_includes
from tftrain.devices import normalize_aliases
from tftrain.errors import ConfigError
from tftrain.schema import FieldError, Sources, build, limits, to_plain
from tftrain.shipped_configs import resolve_config


@dataclass(frozen=True)
class OptimizerConfig:
    """Which optimizer and its hyper-parameters."""

    name: Literal["sgd", "momentum", "adam", "adagrad", "rmsprop"] = "sgd"
    learning_rate: float = field(default=0.01, metadata=limits(gt=0))
    momentum: float = field(default=0.9, metadata=limits(ge=0, lt=1))
    nesterov: bool = False
    beta_1: float = field(default=0.9, metadata=limits(ge=0, lt=1))
    beta_2: float = field(default=0.999, metadata=limits(ge=0, lt=1))
    epsilon: float = field(default=1e-7, metadata=limits(gt=0))
    rho: float = field(default=0.9, metadata=limits(ge=0, lt=1))
    initial_accumulator_value: float = field(default=0.1, metadata=limits(ge=0))


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule. Decay intervals are in steps or, if given, epochs."""

    type: Literal["constant", "exponential", "piecewise", "linear"] = "constant"
    decay_rate: float = field(default=0.96, metadata=limits(gt=0))
    decay_steps: int | None = field(default=None, metadata=limits(ge=1))
    decay_epochs: float | None = field(default=None, metadata=limits(gt=0))
    staircase: bool = False
    decay_start_epoch: int = field(default=0, metadata=limits(ge=0))
    boundaries: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    # linear: from learning_rate down to learning_rate * final_fraction over decay_steps, or
    # else over all of training (max_steps, or epochs x steps per epoch), as in word2vec.
    final_fraction: float = field(default=1e-4, metadata=limits(ge=0, le=1))

    def __post_init__(self):
        if self.type == "piecewise" and len(self.values) != len(self.boundaries) + 1:
            raise FieldError(
                "values",
                f"piecewise needs one more value than boundaries, got {len(self.values)} "
                f"values for {len(self.boundaries)} boundaries",
            )
        if list(self.boundaries) != sorted(self.boundaries):
            raise FieldError("boundaries", f"must be increasing, got {list(self.boundaries)}")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when a validation metric has not improved for `patience` evaluations (0 = off)."""

    patience: int = field(default=0, metadata=limits(ge=0))
    metric: str = "loss"
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = field(default=0.0, metadata=limits(ge=0))


@dataclass(frozen=True)
class InitFromConfig:
    """Warm start: variables restored from another run before training starts."""

    checkpoint: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    """How to train: batches, length, optimizer, schedule and regularisation."""

    batch_size: int = field(default=32, metadata=limits(ge=1))
    epochs: int = field(default=10, metadata=limits(ge=0))
    max_steps: int | None = field(default=None, metadata=limits(ge=1))
    steps_per_loop: int = field(default=1, metadata=limits(ge=1))
    shuffle: bool = True
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    clip_grad_norm: float | None = field(default=None, metadata=limits(gt=0))
    l2: float = field(default=0.0, metadata=limits(ge=0))
    ema_decay: float | None = field(default=None, metadata=limits(gt=0, lt=1))
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    on_nan: Literal["stop", "skip_batch", "rollback"] = "stop"
    max_consecutive_skips: int = field(default=10, metadata=limits(ge=1))
    nan_lr_backoff: float = field(default=0.5, metadata=limits(gt=0, lt=1))
    max_rollbacks: int = field(default=3, metadata=limits(ge=1))
    check_numerics: bool = False
    deterministic: bool = False
    grad_accumulation_steps: int = field(default=1, metadata=limits(ge=1))
    mixed_precision: bool = False
    mixed_precision_dtype: Literal["auto", "float16", "bfloat16"] = "auto"
    init_from: InitFromConfig | None = None
    log_every_steps: int = field(default=100, metadata=limits(ge=1))
    validate_every_steps: int | None = field(default=None, metadata=limits(ge=1))


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation batches and which splits `fit` scores when it ends."""

    batch_size: int | None = field(default=None, metadata=limits(ge=1))
    max_batches: int | None = field(default=None, metadata=limits(ge=1))
    final_splits: tuple[Literal["train", "valid", "test"], ...] = ("valid", "test")


@dataclass(frozen=True)
class CheckpointConfig:
    """Latest-N checkpoints plus the best by a validation metric."""

    every_steps: int | None = field(default=None, metadata=limits(ge=1))
    max_to_keep: int = field(default=3, metadata=limits(ge=1))
    best_metric: str | None = "loss"
    best_mode: Literal["auto", "min", "max"] = "auto"


@dataclass(frozen=True)
class SummariesConfig:
    """TensorBoard event files under `logs/`."""

    enabled: bool = True
    histograms: bool = False


@dataclass(frozen=True)
class DeviceConfig:
    """ConfigProto-style device options, applied before TensorFlow touches a device."""

    visible_devices: str | None = None
    allow_growth: bool = False
    per_process_gpu_memory_fraction: float | None = field(default=None, metadata=limits(gt=0, le=1))
    memory_limit_mb: int | None = field(default=None, metadata=limits(ge=1))
    allow_soft_placement: bool = True
    log_device_placement: bool = False
    intra_op_parallelism_threads: int = field(default=0, metadata=limits(ge=0))
    inter_op_parallelism_threads: int = field(default=0, metadata=limits(ge=0))
    # Split the CPU into N logical devices (e.g. to run `mirrored` on a machine without GPUs).
    logical_cpus: int | None = field(default=None, metadata=limits(ge=1))
    strategy: Literal["default", "one_device", "mirrored", "multi_worker", "parameter_server"] = (
        "default"
    )
    # Where a multi-worker cluster comes from (tftrain/cluster.py): auto = TF_CONFIG if set.
    cluster: Literal["auto", "none", "tf_config", "slurm"] = "auto"
    cluster_port: int = field(default=8888, metadata=limits(ge=1, le=65535))
    jit_compile: bool = False

    def __post_init__(self):  # see tftrain/devices.py and docs/devices.md
        if self.per_process_gpu_memory_fraction and self.memory_limit_mb:
            raise FieldError(
                "memory_limit_mb", "set either per_process_gpu_memory_fraction or memory_limit_mb"
            )
        if self.allow_growth and (self.per_process_gpu_memory_fraction or self.memory_limit_mb):
            raise FieldError(
                "allow_growth",
                "TensorFlow 2 cannot combine memory growth with a memory limit on one GPU; "
                "choose allow_growth or a limit",
            )


@dataclass(frozen=True)
class ExportConfig:
    """What `tftrain export` writes and how closely the reloaded artefact must match."""

    formats: tuple[Literal["saved_model"], ...] = ("saved_model",)
    check_examples: int = field(default=16, metadata=limits(ge=1))
    atol: float = field(default=1e-5, metadata=limits(ge=0))


@dataclass(frozen=True)
class Config:
    """One resolved, validated run configuration."""

    name: str
    model: Any
    data: Any
    seed: int = 42
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    summaries: SummariesConfig = field(default_factory=SummariesConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict:
        return to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def digest(self) -> str:
        return hashlib.sha256(self.to_yaml().encode()).hexdigest()[:16]

    def replace(self, **sections) -> Config:
        return dataclasses.replace(self, **sections)


SECTIONS = {
    "train": TrainConfig,
    "eval": EvalConfig,
    "checkpoint": CheckpointConfig,
    "summaries": SummariesConfig,
    "device": DeviceConfig,
    "export": ExportConfig,
}
TOP_LEVEL = ["name", "seed", "model", "data", *SECTIONS, "include"]


# --- validation ---------------------------------------------------------------------------


def _typed_section(kind_registry, section: str, raw, sources: Sources):
    """Validate `model:` or `data:` against the Config of the class its `type` names."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config error: '{section}' must be a mapping with a 'type' "
            f"({sources.where(section) or 'missing'})"
        )
    kind = raw.get("type")
    if not kind:
        valid = ", ".join(kind_registry.names())
        raise ConfigError(
            f"config error: '{section}.type' is required; one of {valid} "
            f"({sources.where(section) or 'not set'})"
        )
    cls = kind_registry.get(
        str(kind), key=f"{section}.type", where=sources.where(f"{section}.type")
    )
    return build(cls.Config, raw, section, sources)


def validate(tree: dict, sources: Sources, default_name: str = "run") -> Config:
    """A merged tree -> `Config`, or a `ConfigError` saying what and where."""
    from tftrain.schema import fail, nearest, shown, shown_key

    for key in tree:
        if key not in TOP_LEVEL:
            guess = nearest(str(key), TOP_LEVEL)
            hint = f"; did you mean '{guess}'?" if guess else ""
            fail(str(key), f"unknown top-level key {shown_key(key)}{hint}", sources)
    for required in ("model", "data"):
        if required not in tree:
            fail(required, f"missing required section '{required}' (with a 'type')", sources)
    for name in SECTIONS:
        if not isinstance(tree.get(name), dict | type(None)):
            fail(name, f"'{name}' must be a mapping of options, got {shown(tree[name])}", sources)
    top = build(_TopLevel, {k: tree[k] for k in ("name", "seed") if k in tree}, "", sources)
    tree = normalize_aliases(tree, sources)  # device: ConfigProto spellings (gpu_options.*)
    sections = {
        name: build(cls, tree.get(name) or {}, name, sources) for name, cls in SECTIONS.items()
    }
    return Config(
        name=top.name or default_name,
        seed=top.seed,
        model=_typed_section(registry.models, "model", tree["model"], sources),
        data=_typed_section(registry.datasets, "data", tree["data"], sources),
        **sections,
    )


@dataclass(frozen=True)
class _TopLevel:
    name: str | None = None
    seed: int = field(default=42, metadata=limits(ge=0, lt=2**32))  # numpy's seed range

    def __post_init__(self):  # the run goes to runs/NAME; --run-dir chooses any other path
        if self.name and (
            self.name.startswith(("/", "\\", "~"))
            or ".." in re.split(r"[\\/]", self.name)
            or re.match(r"^[A-Za-z]:", self.name)
            or "\0" in self.name
        ):
            raise FieldError(
                "name",
                f"must be a relative name without '..' (runs go to runs/NAME), got "
                f"{self.name!r}; use --run-dir to put a run anywhere else",
            )


def load_config(path, overrides=()) -> Config:
    """Read, merge, override and validate the config at `path` (or a shipped config's name)."""
    path = resolve_config(path)
    tree, lines = read_with_includes(path)
    tree = apply_overrides(tree, overrides, lines)
    return validate(tree, Sources(lines), default_name=path.stem)


def config_from_dict(tree: dict, *, name: str = "run") -> Config:
    """Validate an in-memory tree (used by tests and library callers)."""
    return validate(copy.deepcopy(tree), Sources({}, "in-memory config"), default_name=name)


def with_overrides(config: Config, overrides) -> Config:
    """A copy of a validated config with `--set` style overrides applied."""
    sources: dict = {}
    tree = apply_overrides(config.to_dict(), overrides, sources)
    return validate(tree, Sources(sources), default_name=config.name)
