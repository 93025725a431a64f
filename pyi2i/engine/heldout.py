"""A held-out measure of translation quality: mean L1 between G(A) and the true B on the test split.

Paired (aligned) data has the true B beside each test A. Unpaired data has none in general; the
built-in demo data keeps it hidden in testA_target/ (testB_target/ for BtoA), which is how one can
check that a CycleGAN trained without pairs learned the real mapping.
"""

from __future__ import annotations

import argparse
import copy
import os

import torch
from torch.utils.data import DataLoader, Dataset

from pyi2i.data import create_dataset


class _Zipped(Dataset):
    """Inputs and targets from two single-folder datasets, matched by sorted file name."""

    def __init__(self, inputs: Dataset, targets: Dataset):
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict:
        return {"A": self.inputs[index]["A"], "B": self.targets[index]["A"]}


def heldout_dataset(opt: argparse.Namespace) -> Dataset | None:
    """Test pairs for `opt`'s data, or None when the dataset has no known targets."""
    if opt.dataroot is None:
        return None
    # Deterministic evaluation: resize straight to the training crop size, no flips.
    eval_opt = copy.copy(opt)
    eval_opt.preprocess, eval_opt.load_size, eval_opt.no_flip = "resize_and_crop", opt.crop_size, True
    eval_opt.phase, eval_opt.skip_bad_images = "test", False
    if opt.dataset_mode == "aligned":
        if not os.path.isdir(os.path.join(opt.dataroot, "test")):
            return None
        return create_dataset(eval_opt)
    source = "testB" if opt.direction == "BtoA" else "testA"
    inputs_dir, targets_dir = (os.path.join(opt.dataroot, d) for d in (source, source + "_target"))
    if not (os.path.isdir(inputs_dir) and os.path.isdir(targets_dir)):
        return None
    eval_opt.dataset_mode, eval_opt.direction = "single", "AtoB"
    inputs = create_dataset(argparse.Namespace(**{**vars(eval_opt), "dataroot": inputs_dir}))
    targets = create_dataset(argparse.Namespace(**{**vars(eval_opt), "dataroot": targets_dir,
                                                   "input_nc": opt.output_nc}))
    names = [[os.path.basename(p) for p in d.paths] for d in (inputs, targets)]
    if names[0] != names[1]:
        raise ValueError(f"{targets_dir} must hold one target per image of {inputs_dir}, with the same file names")
    return _Zipped(inputs, targets)


@torch.no_grad()
def heldout_l1(G: torch.nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 1) -> float:
    """Mean |G(A) - B| over the dataset, in the [-1, 1] image scale. G runs in eval mode, so batch
    norm's running statistics are used and left unchanged."""
    was_training = G.training
    G.eval()
    total, count = 0.0, 0
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            fake = G(batch["A"].to(device)).float()
            total += (fake - batch["B"].to(device)).abs().sum().item()
            count += fake.numel()
    finally:
        G.train(was_training)
    return total / count
