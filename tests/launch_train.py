"""`python -m pyi2i.train` for the distributed tests, started by torchrun as `launch_train.py ARGS`.

Two changes, both for comparing runs exactly: oneDNN is off, so that a batch of two gives each
sample the very activations it gets alone (oneDNN's convolutions round differently by batch size,
which can flip a ReLU at zero and so a gradient); and with SAVES_LOG set, every checkpoint file
written is recorded there as a line 'RANK PATH'.
"""

import os
import sys

import torch

from pyi2i import checkpoints
from pyi2i.cli import run_cli
from pyi2i.train import main

torch.backends.mkldnn.enabled = False

if os.environ.get("SAVES_LOG"):
    atomic_save = checkpoints.atomic_save

    def recorded(obj, path):
        with open(os.environ["SAVES_LOG"], "a") as f:
            f.write(f"{os.environ.get('RANK', '0')} {path}\n")
        atomic_save(obj, path)

    checkpoints.atomic_save = recorded

sys.exit(run_cli(lambda: main(sys.argv[1:])))
