"""pyi2i: fast, faithful training of pix2pix and CycleGAN."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # imported on first use, so `import pyi2i` stays light for the command-line entry points
    if name == "Translator":
        from pyi2i.translator import Translator

        return Translator
    raise AttributeError(f"module 'pyi2i' has no attribute {name!r}")


__all__ = ["Translator"]
