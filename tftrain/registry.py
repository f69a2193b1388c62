"""Name -> class tables for models and datasets, with "did you mean" for typos."""

from __future__ import annotations

import importlib

from tftrain.errors import ConfigError
from tftrain.schema import nearest


class Registry:
    """Classes registered by name; a second class under the same name is refused."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._classes: dict[str, type] = {}

    def register(self, name: str):
        def decorate(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorate

    def _load(self) -> None:
        # Importing the package imports every module in it, which registers its classes.
        importlib.import_module(self.package)

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
            f"config error: unknown {self.kind} type {label}{name!r}{location}. "
            f"Valid: {', '.join(self.names())}.{hint}"
        )

    def items(self):
        self._load()
        return sorted(self._classes.items())


models = Registry("model", "tftrain.models")
datasets = Registry("dataset", "tftrain.data")
