"""pyi2i: fast, faithful training of pix2pix and CycleGAN."""

__version__ = "0.1.0"
