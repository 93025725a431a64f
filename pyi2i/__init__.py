"""pyi2i: fast, faithful training of pix2pix and CycleGAN."""

__version__ = "0.1.0"


# Imported on first use, so that `import pyi2i` stays light for the command-line entry points.
_LAZY = {"Translator": "pyi2i.translator", "TrainConfig": "pyi2i.config", "fit": "pyi2i.train",
         "register_method": "pyi2i.registry", "register_dataset": "pyi2i.registry"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pyi2i' has no attribute {name!r}")


__all__ = ["TrainConfig", "Translator", "fit", "register_dataset", "register_method"]
