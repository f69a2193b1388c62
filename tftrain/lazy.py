"""Lazy module proxies, so `tftrain --help` and config errors never import TensorFlow."""

import importlib
import os
import types


class LazyModule(types.ModuleType):
    """A stand-in for a module that imports the real one on first attribute access."""

    def __init__(self, name: str):
        super().__init__(name)
        self._module = None

    def _load(self):
        if self._module is None:
            # Quiet TensorFlow's C++ start-up chatter unless the user asked for it (by setting
            # TF_CPP_MIN_LOG_LEVEL, or with `tftrain --debug`, which sets it to 0).
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            self._module = importlib.import_module(self.__name__)
        return self._module

    def __getattr__(self, attribute):
        return getattr(self._load(), attribute)


tf = LazyModule("tensorflow")
keras = LazyModule("keras")
