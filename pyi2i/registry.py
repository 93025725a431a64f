"""Training methods and dataset layouts by name: the built-in ones, those a user's module registers
with a decorator, and those installed packages declare under the entry-point groups
`pyi2i.methods` and `pyi2i.datasets`, as the original release's template_model.py and
template_dataset.py allow:

    import pyi2i
    from pyi2i.engine.pix2pix import Pix2Pix

    @pyi2i.register_method("my_pix2pix")
    class MyPix2Pix(Pix2Pix):
        ...

`--model my_pix2pix` then finds it once its module is imported (`--plugin my_module`, or an entry
point `my_pix2pix = "my_package.my_module:MyPix2Pix"` in the group `pyi2i.methods`). The README's
Plug-ins section shows a whole one.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Callable, TypeVar

from pyi2i.errors import UserError

log = logging.getLogger("pyi2i")
T = TypeVar("T", bound=type)


class UnknownName(UserError, ValueError):
    """A method or dataset layout that nothing registered."""


class Registry:
    """Classes by name, with aliases (the original release's spellings). The built-in classes
    register when `builtins` is imported, and installed plug-ins when the names are first read."""

    def __init__(self, kind: str, option: str, group: str, builtins: tuple[str, ...]):
        self.kind, self.option, self.group, self.builtins = kind, option, group, builtins
        self.classes: dict[str, type] = {}
        self.aliases: dict[str, str] = {}
        self.loaded = False

    def register(self, name: str, cls: type, aliases: tuple[str, ...] = ()) -> None:
        for key in (name, *aliases):
            taken = self.classes.get(self.aliases.get(key, key))
            if taken is not None and taken is not cls:
                raise ValueError(f"{self.kind} name {key!r} is taken by {taken.__module__}.{taken.__qualname__}")
        self.classes[name] = cls
        self.aliases.update({alias: name for alias in aliases})
        cls.registered_name = name

    def load(self) -> None:
        """The built-in classes, then every installed plug-in of the group (once)."""
        if self.loaded:
            return
        self.loaded = True
        for module in self.builtins:
            importlib.import_module(module)
        for entry in entry_points(group=self.group):
            try:
                cls = entry.load()  # importing the module may register it through the decorator
            except Exception as e:  # noqa: BLE001 - a broken plug-in must not stop every run
                log.warning("the %s plug-in %r (%s) could not be loaded: %s", self.kind, entry.name, entry.value, e)
                continue
            if isinstance(cls, type) and entry.name not in self.classes:
                self.register(entry.name, cls)

    def names(self) -> tuple[str, ...]:
        self.load()
        return tuple(self.classes)

    def spellings(self) -> tuple[str, ...]:
        """Every accepted name: the registered ones and their aliases."""
        return self.names() + tuple(self.aliases)

    def canonical(self, name: str) -> str:
        self.load()
        return self.aliases.get(name, name)

    def get(self, name: str) -> type:
        self.load()
        name = self.aliases.get(name, name)
        if name not in self.classes:
            raise UnknownName(f"{self.option} {name!r} is not a known {self.kind}: choose one of "
                              f"{', '.join(self.names())}, or register yours (README: Plug-ins)")
        return self.classes[name]


METHODS = Registry("method", "--model", "pyi2i.methods", ("pyi2i.engine.methods",))
DATASETS = Registry("dataset layout", "--dataset_mode", "pyi2i.datasets", ("pyi2i.data.datasets",
                                                                            "pyi2i.data.colorization"))


def register_method(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Class decorator: `--model NAME` trains with this Method subclass (see pyi2i.engine.method)."""
    def register(cls: T) -> T:
        METHODS.register(name, cls, aliases)
        return cls
    return register


def register_dataset(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Class decorator: `--dataset_mode NAME` reads data with this ImageDataset subclass (see
    pyi2i.data.datasets)."""
    def register(cls: T) -> T:
        DATASETS.register(name, cls, aliases)
        return cls
    return register
