"""Translation quality on the test split: the held-out L1 between G(A) and the true B, and the
image metrics of pyi2i.metrics (FID/KID against the real test images of domain B; PSNR, SSIM and
LPIPS against the true targets).

Paired (aligned) data has the true B beside each test A. Unpaired data has none in general; the
built-in demo data keeps it hidden in testA_target/ (testB_target/ for BtoA), which is how one can
check that a CycleGAN trained without pairs learned the real mapping.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from pyi2i.config import DataConfig
from pyi2i.data import create_dataset
from pyi2i.metrics import ImageMetrics, as_uint8


class _Zipped(Dataset):
    """Inputs and targets from two single-folder datasets, matched by sorted file name."""

    def __init__(self, inputs: Dataset, targets: Dataset):
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict:
        return {"A": self.inputs[index]["A"], "B": self.targets[index]["A"]}


class _Targets(Dataset):
    """The true B images of a paired dataset, as a dataset of single images."""

    def __init__(self, pairs: Dataset):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        return {"A": self.pairs[index]["B"]}


def _eval_data(data: DataConfig) -> DataConfig:
    """Deterministic evaluation: resize straight to the training crop size, no flips."""
    return dataclasses.replace(data, preprocess="resize_and_crop", load_size=data.crop_size, no_flip=True,
                               phase="test", skip_bad_images=False)


def _single(eval_data: DataConfig, folder: str, channels: int) -> Dataset:
    return create_dataset(dataclasses.replace(eval_data, dataroot=folder, dataset_mode="single", direction="AtoB"),
                          input_nc=channels)


def heldout_dataset(data: DataConfig, input_nc: int, output_nc: int) -> Dataset | None:
    """Test pairs of `data`'s dataset, or None when it has no known targets."""
    if data.dataroot is None:
        return None
    eval_data = _eval_data(data)
    if data.dataset_mode == "aligned":
        if not os.path.isdir(os.path.join(data.dataroot, "test")):
            return None
        return create_dataset(eval_data, input_nc=input_nc, output_nc=output_nc)
    source = "testB" if data.direction == "BtoA" else "testA"
    inputs_dir, targets_dir = (os.path.join(data.dataroot, d) for d in (source, source + "_target"))
    if not (os.path.isdir(inputs_dir) and os.path.isdir(targets_dir)):
        return None
    inputs = _single(eval_data, inputs_dir, input_nc)
    targets = _single(eval_data, targets_dir, output_nc)
    names = [[os.path.basename(p) for p in d.paths] for d in (inputs, targets)]
    if names[0] != names[1]:
        raise ValueError(f"{targets_dir} must hold one target per image of {inputs_dir}, with the same file names")
    return _Zipped(inputs, targets)


@dataclass
class EvalSplit:
    """What the generator is evaluated on: its test inputs (with their true targets when `paired`),
    and real images of the output domain for FID/KID."""

    inputs: Dataset  # items {"A": input} or, when paired, {"A": input, "B": true target}
    paired: bool
    reals: Dataset | None  # items {"A": real image of domain B}


def eval_split(data: DataConfig, input_nc: int, output_nc: int) -> EvalSplit | None:
    """The test split of `data`'s dataset, or None when it has none (no test/ or testA/ folder)."""
    if data.dataset_mode not in ("aligned", "unaligned"):  # other layouts define no test split here
        return None
    pairs = heldout_dataset(data, input_nc, output_nc)
    if data.dataset_mode == "aligned":
        return None if pairs is None else EvalSplit(pairs, True, _Targets(pairs))
    eval_data = _eval_data(data)
    source, target = ("testB", "testA") if data.direction == "BtoA" else ("testA", "testB")
    source, target = (os.path.join(data.dataroot, d) for d in (source, target))
    reals = _single(eval_data, target, output_nc) if os.path.isdir(target) else None
    if pairs is not None:
        return EvalSplit(pairs, True, reals)
    if not os.path.isdir(source):
        return None
    return EvalSplit(_single(eval_data, source, input_nc), False, reals)


@torch.no_grad()
def evaluate(G: torch.nn.Module, split: EvalSplit, device: torch.device, batch_size: int = 1,
             metrics: ImageMetrics | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """The held-out L1 (mean |G(A) - B| in the [-1, 1] scale, with paired data) and, given
    `metrics`, its image metrics; returns (values, reasons for metrics that were skipped).

    G runs in eval mode, so batch norm's running statistics are used and left unchanged."""
    if metrics is not None and not metrics.has_reals and split.reals is not None:
        for batch in DataLoader(split.reals, batch_size=batch_size, shuffle=False):
            metrics.add_reals(as_uint8(batch["A"]))
    was_training = G.training
    G.eval()
    total, count = 0.0, 0
    try:
        for batch in DataLoader(split.inputs, batch_size=batch_size, shuffle=False):
            fake = G(batch["A"].to(device)).float()
            if split.paired:
                total += (fake - batch["B"].to(device)).abs().sum().item()
                count += fake.numel()
            if metrics is not None:
                metrics.add_fakes(as_uint8(fake), as_uint8(batch["B"]) if split.paired else None)
    finally:
        G.train(was_training)
    values, skipped = {}, {}
    if split.paired:
        values["heldout_l1"] = total / count
    if metrics is not None:
        more, skipped = metrics.compute()
        values.update(more)
        metrics.reset()
        if split.reals is None:
            skipped["fid"] = skipped["kid"] = "the test split has no real images of the output domain"
    return values, skipped
