"""The Python API for putting a trained generator to work.

    translator = pyi2i.Translator.from_checkpoint("latest_net_G.pth")
    out = translator(Image.open("x.png"))          # a PIL image of the same size

`from_checkpoint` reads pyi2i training checkpoints (`latest.pt`; `net` picks G_A, G_B or G), the
original release's weight files (`latest_net_G.pth`, `*_net_G_A.pth`, ...; their architecture is read
off the weights) and safetensors files written by `python -m pyi2i.export` (architecture in their
metadata). Images of any size at least 2x2 are reflect-padded to what the network needs and cropped
back; with `tile` they go through overlapping tiles (pyi2i.tiling), in bounded memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pyi2i import checkpoints, integrity
from pyi2i.errors import UserError
from pyi2i.models.original_format import (
    IncompatibleCheckpoint, apply_overrides, build_generator, from_original, infer_generator_options, size_multiple,
)
from pyi2i.tiling import translate_tiled

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# safetensors metadata key holding the generator's options (JSON), as pyi2i.export writes it
OPTIONS_KEY = "pyi2i.generator"


def _pyi2i_options(config: dict, name: str) -> dict:
    nc = (config["output_nc"], config["input_nc"]) if name == "G_B" else (config["input_nc"], config["output_nc"])
    return dict(netG=config["netG"], ngf=config["ngf"], norm=config["norm"], input_nc=nc[0], output_nc=nc[1],
                use_dropout=not config["no_dropout"])


def read_generator(path: str | os.PathLike, net: str | None = None, direction: str = "AtoB",
                   **given) -> tuple[dict, dict, str]:
    """(options, weights, layout) of the generator in `path`; layout is "pyi2i" (this package's own
    module names) or "original" (the original release's key names).

    `net` picks the network of a training checkpoint (default G for pix2pix, and for CycleGAN G_A,
    or G_B with direction "BtoA").
    `given` holds options the user set (netG, ngf, norm, input_nc, output_nc, use_dropout); None
    means "read it from the file", and a value that contradicts the file is an error."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"weight file {path} does not exist")
        integrity.verify(path)
        options, weights = _read_safetensors(path)
        layout = "original"
    else:
        state = checkpoints.load(path)
        if isinstance(state, dict) and state.get("format") == checkpoints.FORMAT:
            nets = state["method"]["nets"]
            name = net or ("G" if "G" in nets else "G_B" if direction == "BtoA" else "G_A")
            if name not in nets or not name.startswith("G"):
                raise UserError(f"{path} holds no generator {name!r}; choose one of "
                                f"{', '.join(k for k in nets if k.startswith('G'))} with --net")
            options, weights, layout = _pyi2i_options(state["config"], name), nets[name], "pyi2i"
        elif isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values()):
            options, weights, layout = infer_generator_options(state), state, "original"
        else:
            raise IncompatibleCheckpoint(f"{path} holds neither a pyi2i checkpoint nor a generator's state dict")
    use_dropout = given.pop("use_dropout", None)
    options = apply_overrides(options, given, str(path))
    if use_dropout is not None:
        options["use_dropout"] = use_dropout
    elif options["use_dropout"] is None:  # U-Net files do not show it: pix2pix trains with dropout on
        options["use_dropout"] = True
    return options, weights, layout


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        weights = {k: f.get_tensor(k) for k in f.keys()}
    if OPTIONS_KEY in metadata:
        return json.loads(metadata[OPTIONS_KEY]), weights
    return infer_generator_options(weights), weights


def load_generator(path: str | os.PathLike, net: str | None = None, impl: str = "auto", direction: str = "AtoB",
                   **given) -> tuple[torch.nn.Module, dict]:
    """The generator in `path` with its weights, on the CPU, and its options (see `read_generator`)."""
    options, weights, layout = read_generator(path, net, direction, **given)
    G = build_generator(options, impl=impl)
    if layout == "original":
        from_original(G, weights, source=str(path))
    else:
        try:
            G.load_state_dict(weights)
        except RuntimeError as e:
            raise IncompatibleCheckpoint(f"{path}: the options given do not match the checkpoint's generator: {e}") from e
    return G, options


def resolve_amp(amp: bool | str | torch.dtype | None) -> torch.dtype | None:
    """None/False: fp32; True or "bf16": bfloat16 autocast; "fp16": float16 autocast."""
    if amp is None or amp is False or amp == "none":
        return None
    if amp is True:
        return torch.bfloat16
    if isinstance(amp, torch.dtype) and amp in AMP_DTYPES.values():
        return amp
    if amp in AMP_DTYPES:
        return AMP_DTYPES[amp]
    raise UserError(f"amp={amp!r}: use None, True, 'bf16' or 'fp16'")


def padded_size(size: int, multiple: int) -> int:
    """`size` rounded up to a multiple, and to at least two: the ResNet's instance norm needs more
    than one value per channel at its lowest resolution, and twice the multiple gives it 2x2."""
    return max(-(-size // multiple) * multiple, 2 * multiple if multiple == 4 else multiple)


def pad_reflect(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pads H and W (at the bottom and right) up to `padded_size`, mirroring the image; repeats the
    mirroring where the padding is wider than the image."""
    h, w = x.shape[-2:]
    if h < 2 or w < 2:
        raise UserError(f"an image of {w}x{h} pixels is too small to translate: it needs at least 2x2 pixels")
    th, tw = padded_size(h, multiple), padded_size(w, multiple)
    while x.shape[-2:] != (th, tw):
        ph = min(th - x.shape[-2], x.shape[-2] - 1)
        pw = min(tw - x.shape[-1], x.shape[-1] - 1)
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x


class Translator:
    """A generator ready for inference: call it on a PIL image, a list of them, a (H, W, C) or
    (N, H, W, C) uint8 numpy array, or a float tensor (C, H, W) or (N, C, H, W) in [-1, 1]; the
    result is of the same kind and size (a tensor stays on its device and dtype).

    eval=True (the default) uses dropout off and batch norm's running statistics, so a result does
    not depend on what else is in the batch; eval=False is the original release's test.py default
    (dropout on, batch norm over the test image), run one image at a time.
    """

    def __init__(self, generator: torch.nn.Module, options: dict, device: str | torch.device | None = None,
                 amp: bool | str | torch.dtype | None = None, eval: bool = True, tile: int | None = None,
                 tile_overlap: int = 32, cuda_graphs: bool = False):
        from pyi2i.engine.graphs import GraphedForward
        from pyi2i.engine.trainer import resolve_device

        self.device = resolve_device(str(device) if device is not None else "auto")
        self.options = dict(options)
        self.multiple = size_multiple(options["netG"])
        self.amp = resolve_amp(amp)
        self.tile, self.tile_overlap = tile, tile_overlap
        self.G = generator.to(self.device).train(not eval)
        if self.device.type == "cuda":  # cuDNN's convolutions are fastest on NHWC
            self.G = self.G.to(memory_format=torch.channels_last)
        # batch norm in training mode normalises over the batch: one image at a time keeps each
        # result independent of its neighbours, as the original release's batch of one does
        self.one_at_a_time = not eval and any(isinstance(m, torch.nn.BatchNorm2d) for m in self.G.modules())
        # one graph per input shape (batch size x padded image size): at small sizes a generator's
        # forward is bound by kernel launches, which a replay does without
        self.forward = GraphedForward(self._forward, self.device) if cuda_graphs else self._forward

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        amp: bool | str | torch.dtype | None = None, *, net: str | None = None, eval: bool = True,
                        tile: int | None = None, tile_overlap: int = 32, impl: str = "auto", direction: str = "AtoB",
                        cuda_graphs: bool = False, **given) -> "Translator":
        """A Translator for the generator in `path` (see `read_generator` for `net`, `direction` and `given`)."""
        G, options = load_generator(path, net, impl=impl, direction=direction, **given)
        return cls(G, options, device, amp, eval, tile, tile_overlap, cuda_graphs)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """The network on (N, C, H, W) with H, W multiples of `self.multiple`; fp32 out."""
        if self.one_at_a_time and x.shape[0] > 1:
            return torch.cat([self._run(x[i:i + 1]) for i in range(x.shape[0])])
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            return self.G(x).float()

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float in [-1, 1], any H, W >= 2 -> (N, output_nc, H, W) float32 on self.device."""
        if x.dim() != 4 or x.shape[1] != self.options["input_nc"]:
            raise UserError(f"expected images of shape (N, {self.options['input_nc']}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x = pad_reflect(x.to(self.device, torch.float32), self.multiple)
        if self.tile and max(x.shape[-2:]) > self.tile:
            y = translate_tiled(self._run, x, self.tile, self.tile_overlap, self.multiple)
        else:
            y = self._run(x)
        return y[..., :h, :w]

    def __call__(self, images):
        if isinstance(images, Image.Image):
            return self([images])[0]
        if isinstance(images, (list, tuple)):
            return self._translate_pil(list(images))
        if isinstance(images, np.ndarray):
            return self._translate_array(images)
        if torch.is_tensor(images):
            if not images.is_floating_point():
                raise UserError(f"a tensor input must be float in [-1, 1] (got {images.dtype}); "
                                "pass uint8 images as numpy arrays or PIL images")
            batch = images[None] if images.dim() == 3 else images
            out = self.translate_tensor(batch).to(images.device, images.dtype)
            return out[0] if images.dim() == 3 else out
        raise UserError(f"cannot translate a {type(images).__name__}: pass a PIL image, a list of them, "
                        "a uint8 numpy array (H, W, C) or a float tensor (N, C, H, W) in [-1, 1]")

    def to_tensor_image(self, img: Image.Image) -> torch.Tensor:
        """(input_nc, H, W) in [-1, 1] of a PIL image in any mode, 16-bit ones at full precision."""
        from pyi2i.data.transforms import to_network

        if not isinstance(img, Image.Image):
            raise UserError(f"a list to translate must hold PIL images, not {type(img).__name__}")
        return to_network(img, self.options["input_nc"])

    def to_uint8(self, y: torch.Tensor) -> np.ndarray:
        """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8, converted as the original release does."""
        from pyi2i.reports import to_uint8

        return to_uint8(y)[..., : y.shape[1]]

    def _translate_pil(self, images: list) -> list:
        tensors = [self.to_tensor_image(img) for img in images]
        out: list = [None] * len(images)
        by_size: dict[tuple, list[int]] = {}
        for i, t in enumerate(tensors):  # same-size images share a batch
            by_size.setdefault(tuple(t.shape), []).append(i)
        for indices in by_size.values():
            arrays = self.to_uint8(self.translate_tensor(torch.stack([tensors[i] for i in indices])))
            for i, a in zip(indices, arrays):
                out[i] = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        return out

    def _translate_array(self, array: np.ndarray) -> np.ndarray:
        if array.dtype != np.uint8 or array.ndim not in (3, 4):
            raise UserError(f"a numpy input must be uint8 (H, W, C) or (N, H, W, C), got {array.dtype} {array.shape}")
        from pyi2i.data.images import to_tensor

        batch = array[None] if array.ndim == 3 else array
        out = self.to_uint8(self.translate_tensor(torch.stack([to_tensor(a) for a in batch])))
        return out[0] if array.ndim == 3 else out

    def translate_folder(self, input: str | os.PathLike, output: str | os.PathLike, batch_size: int = 8,
                         overwrite: bool = False, progress: bool = True) -> Path:
        """Every image under `input` (at its own size) to `output/images/<relative folder>/STEM_fake.png`,
        beside STEM_real.png and an index.html; see pyi2i.translate."""
        from pyi2i.translate import translate_folder

        return translate_folder(self, input, output, batch_size=batch_size, overwrite=overwrite, progress=progress)
