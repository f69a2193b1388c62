"""Name -> class tables for models and datasets, with "did you mean" for typos.

The tables fill themselves: every module in `tftrain/models/` and `tftrain/data/` is imported
on first use, and importing a module runs its `@register` decorators. Adding a model or a
dataset is dropping one file into its folder.
"""

from __future__ import annotations

import importlib
import pkgutil

from tftrain.errors import ConfigError
from tftrain.schema import nearest, shown


class Registry:
    """Classes registered by name; a second class under the same name is refused."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._classes: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str):
        def decorate(cls):
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorate

    def _load(self) -> None:
        """Import every module of the package once (each registers its own classes)."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def get(self, name: str, *, key: str = "", where: str = "") -> type:
        self._load()
        if name in self._classes:
            return self._classes[name]
        guess = nearest(str(name), self._classes)
        hint = f" Did you mean '{guess}'?" if guess else ""
        location = f" ({where})" if where else ""
        label = f"'{key}' " if key else ""
        raise ConfigError(
            f"config error: unknown {self.kind} type {label}{shown(name)}{location}. "
            f"Valid: {', '.join(self.names())}.{hint}"
        )

    def items(self):
        self._load()
        return sorted(self._classes.items())


models = Registry("model", "tftrain.models")
datasets = Registry("dataset", "tftrain.data")


def build_dataset(config):
    """The dataset a config's `data:` section names."""
    return datasets.get(config.data.type)(config.data, seed=config.seed)


def build_model(config, spec):
    """The model a config's `model:` section names, built for a dataset's spec."""
    return models.get(config.model.type)(config.model, spec)
