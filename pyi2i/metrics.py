"""Image-quality metrics of translated images: FID and KID (Inception-v3 pool features), and against
true targets PSNR, SSIM and LPIPS.

The statistics are torchmetrics' (the Inception network is torch-fidelity's port of the TF graph
that published FIDs use); this module only feeds them and says plainly what is missing when a
metric cannot be computed. Every image enters as uint8 (N, 3, H, W), the form in which results are
saved, so the metrics of a run and those of `python -m pyi2i.evaluate` on its saved images agree.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import urllib.error
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from pyi2i.data import DataError, make_dataset
from pyi2i.data.decode import load_image
from pyi2i.data.images import to_rgb
from pyi2i.errors import UserError
from pyi2i.reports import to_uint8

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
# torch-fidelity's and torchmetrics' defaults (Binkowski et al. use subsets of 1000 as well).
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
METRIC_NAMES = ("fid", "kid", "kid_std", "psnr", "ssim", "lpips")


class MetricUnavailable(UserError, RuntimeError):
    """A metric cannot be computed on this machine; the message says what is missing and how to add it."""


def weights_dir() -> Path:
    """Where torch.hub, torch-fidelity and torchvision keep downloaded weights (TORCH_HOME moves it)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_weights(path: Path, url: str, why: str) -> str:
    return f"{why}: download {url} where there is network access and put it at {path}"


def inception_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The Inception-v3 weights file: `path` if given, else torch-fidelity's file in the hub cache,
    fetched there first if it is absent and `download` allows it."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise MetricUnavailable(_missing_weights(path, INCEPTION_URL, f"the Inception-v3 weights file {path} "
                                                                          "(--inception_weights) does not exist"))
        return path
    cached = weights_dir() / INCEPTION_FILE
    if cached.is_file():
        return cached
    why = f"the Inception-v3 weights file {INCEPTION_FILE} is not in {cached.parent}"
    if download:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(cached), progress=False)
            return cached
        except (urllib.error.URLError, OSError) as e:
            why += f" and could not be downloaded ({e})"
    raise MetricUnavailable(_missing_weights(cached, INCEPTION_URL, why) + " (or pass --inception_weights FILE)")


def inception_features(path: str | Path | None = None) -> nn.Module:
    """Inception-v3 2048-d pool features of uint8 images, as in the standard FID (TF-compatible
    bilinear resize to 299x299, no antialiasing, so values compare with published FIDs)."""
    # Every gap at once, so that fixing one does not merely reveal the next.
    problems = []
    try:
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
    except ImportError:
        _TORCH_FIDELITY_AVAILABLE = False
    if not _TORCH_FIDELITY_AVAILABLE:
        problems.append("torchmetrics and torch-fidelity are needed: pip install 'pyi2i[eval]' (torch-fidelity "
                        "needs torchvision built for your torch)")
    try:
        weights = inception_weights(path, download=not problems)
    except MetricUnavailable as e:
        problems.append(str(e))
    if problems:
        raise MetricUnavailable("Inception-v3 is not available: " + "; ".join(problems))
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=str(weights), antialias=False)
    except Exception as e:  # a broken torchvision or a damaged file surfaces here, with its own message
        raise MetricUnavailable(f"Inception-v3 could not be built from {weights}: {type(e).__name__}: {e}") from e
    net.num_features = 2048  # spares torchmetrics a probe forward pass
    return net


def feature_extractor_factory(spec: str):
    """The callable that 'package.module:callable' names; ValueError saying what is wrong otherwise."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--feature_extractor {spec!r}: expected 'package.module:callable'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--feature_extractor {spec}: {e} (is its folder on PYTHONPATH?)") from e


def load_feature_extractor(spec: str) -> nn.Module:
    """A feature network named 'package.module:callable': the callable returns an nn.Module mapping
    uint8 (N, 3, H, W) images to (N, D) features. It replaces Inception-v3 for FID and KID, whose
    values are then comparable only with each other."""
    net = feature_extractor_factory(spec)()
    if not isinstance(net, nn.Module):
        raise ValueError(f"--feature_extractor {spec}: the call returned {type(net).__name__}, not an nn.Module")
    return net.eval()


def lpips_network() -> nn.Module:
    """torchmetrics' LPIPS (AlexNet, the paper's default) on [0, 1] images."""
    try:
        import torchvision
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
    except Exception as e:
        raise MetricUnavailable(f"LPIPS needs torchvision built for your torch (its AlexNet backbone): "
                                f"{type(e).__name__}: {e}") from e
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    path = weights_dir() / url.rsplit("/", 1)[-1]
    try:
        return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True, sync_on_compute=False)
    except (urllib.error.URLError, OSError) as e:
        raise MetricUnavailable(_missing_weights(path, url, f"LPIPS: the AlexNet weights {path.name} are not in "
                                                            f"{path.parent} and could not be downloaded ({e})")) from e


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1]."""
    return images.float() / 255


class ImageMetrics:
    """Accumulates uint8 (N, 3, H, W) images, then computes every metric it was given the means for.

    FID/KID compare the set of fakes with a set of reals (any sizes, unpaired); PSNR, SSIM and
    LPIPS compare each fake with its true target (same size). PSNR is the mean of per-image PSNRs
    and SSIM the mean SSIM (Gaussian window 11, sigma 1.5), both on [0, 1] images.

    The metric objects never synchronise across processes: under torchrun, rank 0 evaluates alone.
    """

    def __init__(self, features: nn.Module | None = None, lpips: nn.Module | None = None,
                 device: torch.device | str = "cpu", keep_reals: bool = False):
        from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.device = torch.device(device)
        local = dict(sync_on_compute=False)
        self.fid = self.kid = None
        if features is not None:
            features = features.to(self.device)
            # With keep_reals, a training run extracts its test reals' features once, not every evaluation.
            self.fid = FrechetInceptionDistance(features, reset_real_features=not keep_reals, **local).to(self.device)
            with warnings.catch_warnings():  # KID keeps every feature in memory: fine for test sets
                warnings.filterwarnings("ignore", message=".*will save all extracted features")
                self.kid = KernelInceptionDistance(features, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE,
                                                   reset_real_features=not keep_reals, **local).to(self.device)
        self.psnr = PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3),
                                         **local).to(self.device)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0, **local).to(self.device)
        self.lpips = None if lpips is None else lpips.to(self.device)
        self.counts = {"real": 0, "fake": 0, "pairs": 0}

    @property
    def has_reals(self) -> bool:
        return self.counts["real"] > 0

    @torch.no_grad()
    def add_reals(self, images: torch.Tensor) -> None:
        """Real images of the target domain, the reference set of FID and KID."""
        if self.fid is not None:
            images = images.to(self.device)
            self.fid.update(images, real=True)
            self.kid.update(images, real=True)
        self.counts["real"] += len(images)

    @torch.no_grad()
    def add_fakes(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> None:
        """Generated images, and their true targets where the data has them."""
        images = images.to(self.device)
        if self.fid is not None:
            self.fid.update(images, real=False)
            self.kid.update(images, real=False)
        self.counts["fake"] += len(images)
        if targets is None:
            return
        targets = targets.to(self.device)
        if targets.shape != images.shape:
            raise ValueError(f"a target has shape {tuple(targets.shape[1:])} but its fake {tuple(images.shape[1:])}: "
                             "PSNR, SSIM and LPIPS compare images of one size")
        fake, real = to_unit(images), to_unit(targets)
        self.psnr.update(fake, real)
        self.ssim.update(fake, real)
        if self.lpips is not None:
            self.lpips.update(fake, real)
        self.counts["pairs"] += len(images)

    def compute(self) -> tuple[dict[str, float], dict[str, str]]:
        """(metric values, reasons for the metrics that could not be computed from what was added)."""
        values, skipped = {}, {}
        if self.fid is not None:
            n = min(self.counts["real"], self.counts["fake"])
            if n < 2:
                skipped["fid"] = skipped["kid"] = (f"FID and KID need at least 2 real and 2 generated images, got "
                                                   f"{self.counts['real']} and {self.counts['fake']}")
            else:
                values["fid"] = float(self.fid.compute())
                # KID draws its subsets from the global generator: seeded apart from it, the value is
                # reproducible and training's random stream is left as it was.
                self.kid.subset_size = min(KID_SUBSET_SIZE, n)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    kid_mean, kid_std = self.kid.compute()
                values["kid"], values["kid_std"] = float(kid_mean), float(kid_std)
        if self.counts["pairs"]:
            values["psnr"] = float(self.psnr.compute())
            values["ssim"] = float(self.ssim.compute())
            if self.lpips is not None:
                values["lpips"] = float(self.lpips.compute())
        return values, skipped

    def reset(self) -> None:
        """Forget the fakes (and, unless keep_reals, the reals) for the next evaluation."""
        for metric in (self.fid, self.kid, self.psnr, self.ssim, self.lpips):
            if metric is not None:
                metric.reset()
        keep = self.fid is not None and not self.fid.reset_real_features
        self.counts = {"real": self.counts["real"] if keep else 0, "fake": 0, "pairs": 0}


def build_metrics(*, inception_weights: str | None = None, feature_extractor: str | None = None,
                  lpips: bool = True, device: torch.device | str = "cpu",
                  keep_reals: bool = False) -> tuple[ImageMetrics | None, dict[str, str]]:
    """ImageMetrics with every metric this machine can compute (None without torchmetrics), and why
    each of the others is skipped."""
    if importlib.util.find_spec("torchmetrics") is None:
        return None, dict.fromkeys(METRIC_NAMES, "torchmetrics is not installed: pip install 'pyi2i[report]'")
    skipped = {}
    try:
        features = load_feature_extractor(feature_extractor) if feature_extractor else inception_features(inception_weights)
    except MetricUnavailable as e:
        features = None
        skipped["fid"] = skipped["kid"] = str(e)
    lpips_net = None
    if lpips:
        try:
            lpips_net = lpips_network()
        except MetricUnavailable as e:
            skipped["lpips"] = str(e)
    return ImageMetrics(features, lpips_net, device, keep_reals), skipped


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output (N, C, H, W) in [-1, 1] -> uint8 (N, 3, H, W), quantised as saved results are."""
    return torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2)


def load_uint8(path: str | Path) -> torch.Tensor:
    """An image file as uint8 (3, H, W), as the metrics take it. 8-bit files convert as training reads
    them; deeper ones (16-bit PNG or TIFF, .npy, multi-page TIFF) are quantised to 8 bits, with one or
    two channels shown as gray and more than three cut to the first three."""
    image = load_image(path)
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.asarray(to_rgb(image)).copy()).permute(2, 0, 1)
    values = image.pixels
    values = np.repeat(values[..., :1], 3, axis=-1) if values.shape[-1] < 3 else values[..., :3]
    return torch.from_numpy(np.round(values * 255.0).astype(np.uint8)).permute(2, 0, 1)


# translate.py writes NAME_fake.png / NAME_real.png, the original release NAME_fake_B.png / NAME_real_A.png.
_MARKER = re.compile(r"_(fake|real)(_[AB])?$")


def _marker(path: str) -> str | None:
    """'fake', 'real' or None, from the file name."""
    found = _MARKER.search(Path(path).stem)
    return found.group(1) if found else None


def _pair_key(path: str, folder: str | Path) -> str:
    """The path relative to `folder`, without suffix or marker: a/x_fake.png and a/x.png share 'a/x'."""
    relative = Path(os.path.relpath(path, folder))
    return str(relative.parent / _MARKER.sub("", relative.stem))


def generated_images(paths: list[str], folder: str | Path) -> list[str]:
    """The generated images among `paths`: the *_fake* ones where there are any (translate's output
    also holds *_real* copies of its inputs), else all of them (a folder of generated images alone).
    DataError for a folder of *_real* copies with no *_fake* images, which cannot be told apart."""
    fakes = [p for p in paths if _marker(p) == "fake"]
    if fakes:
        return fakes
    real = [p for p in paths if _marker(p) == "real"]
    if real:
        raise DataError(f"{folder} holds {len(real)} *_real* image(s) (copies of inputs, e.g. {Path(real[0]).name}) "
                        "and no *_fake* ones, so the generated images cannot be told apart from the inputs: pass "
                        "the folder with NAME_fake.png files, or one holding generated images only")
    return paths


def _image_size(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except (OSError, ValueError):  # .npy and what only tifffile reads
        return load_image(path).size


def _batches(paths: list, batch_size: int, load) -> Iterator[torch.Tensor]:
    """Stacks of consecutive images of one size, at most `batch_size` each."""
    stack = []
    for path in paths:
        image = load(path)
        if stack and (len(stack) == batch_size or image.shape != stack[0].shape):
            yield torch.stack(stack)
            stack = []
        stack.append(image)
    if stack:
        yield torch.stack(stack)


def evaluate_folders(real_dir: str | Path, fake_dir: str | Path, metrics: ImageMetrics,
                     batch_size: int = 50) -> tuple[dict[str, float], dict[str, str], dict[str, int]]:
    """Metrics of the generated images in `fake_dir` (see generated_images) against those in
    `real_dir`: FID and KID between the two sets; PSNR, SSIM and LPIPS between images paired by
    relative path and name (NAME.png, NAME_fake.png and NAME_real.png pair up) when every fake has
    its real. Returns (values, skipped, counts)."""
    reals, fakes = (make_dataset(d) for d in (real_dir, fake_dir))
    for folder, paths in ((real_dir, reals), (fake_dir, fakes)):
        if not paths:
            raise DataError(f"no images (.png, .jpg, ...) in {folder}")
    fakes = generated_images(fakes, fake_dir)
    reals = [p for p in reals if _marker(p) != "fake"] or reals
    by_key = {_pair_key(p, real_dir): p for p in reals}
    unpaired = [p for p in fakes if _pair_key(p, fake_dir) not in by_key]
    if unpaired:
        why = (f"{len(unpaired)} of {len(fakes)} images in {fake_dir} have no real image of the same name in "
               f"{real_dir} (first: {Path(unpaired[0]).name})")
    else:
        pairs = [(p, by_key[_pair_key(p, fake_dir)]) for p in fakes]
        sizes = [tuple(_image_size(p) for p in pair) for pair in pairs]
        mismatch = next((pair for pair, (a, b) in zip(pairs, sizes) if a != b), None)
        why = mismatch and (f"{Path(mismatch[0]).name} and {Path(mismatch[1]).name} differ in size; paired metrics "
                            "compare images of one size (translate with the targets' size)")
    for batch in _batches(reals, batch_size, load_uint8):
        metrics.add_reals(batch)
    if why:
        for batch in _batches(fakes, batch_size, load_uint8):
            metrics.add_fakes(batch)
        skipped = {k: why for k in ("psnr", "ssim", "lpips")}
    else:
        for batch in _batches(pairs, batch_size, lambda pair: torch.stack([load_uint8(q) for q in pair])):
            metrics.add_fakes(batch[:, 0], batch[:, 1])
        skipped = {}
    values, more = metrics.compute()
    return values, {**skipped, **more}, dict(metrics.counts)
