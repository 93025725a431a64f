"""python -m pyi2i.export --checkpoint CKPT --format {onnx,torchscript,pt2,safetensors} --output PATH

Exports a trained generator for use outside pyi2i. CKPT is a pyi2i training checkpoint
(`latest.pt`; --net picks G_A, G_B or G) or an original-release weights file (`latest_net_G.pth`,
`*_net_G_A.pth`, ...); the architecture is read off the file, and an option that contradicts it is
an error.

The exported model is the generator alone, built from the reference path (standard PyTorch ops):
input (N, input_nc, H, W) float in [-1, 1] (RGB for three channels), output (N, output_nc, H, W),
the raw tanh output in [-1, 1]; no resizing, normalisation or 8-bit conversion inside. H and W must
be multiples of the network's size multiple (4 for a ResNet, 2**depth for a U-Net); by default
batch, height and width are free (`--static HxW` fixes height and width). The file's metadata says
all this. Before anything is written the export is run (onnxruntime for ONNX) against PyTorch on a
probe batch, and the largest difference is printed; a difference over the tolerance is an error.

safetensors files hold the weights in the original release's key layout with the architecture in
their metadata; pyi2i.Translator.from_checkpoint and translate load them.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
import re
import warnings
from pathlib import Path

import torch

from pyi2i import __version__, integrity
from pyi2i.cli import console_script
from pyi2i.errors import UserError
from pyi2i.models import NORMS
from pyi2i.models.original_format import build_generator, from_original, size_multiple, to_original
from pyi2i.options import positive_int
from pyi2i.translator import OPTIONS_KEY, load_generator

log = logging.getLogger("pyi2i")

FORMATS = ("onnx", "torchscript", "pt2", "safetensors")
# largest difference from PyTorch's fp32 output that the self-check accepts (outputs lie in [-1, 1])
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2}


class ExportMismatch(UserError):
    """The exported model's output differs from PyTorch's by more than the tolerance."""


def static_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or not int(match[1]) or not int(match[2]):
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x256, got {text!r}")
    return int(match[1]), int(match[2])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyi2i.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="pyi2i checkpoint (.pt) or original *_net_G*.pth weights")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--output", required=True, help="the file to write")
    p.add_argument("--net", choices=("G", "G_A", "G_B"), help="the generator of a training checkpoint "
                   "(default G for pix2pix, G_A for CycleGAN)")
    p.add_argument("--static", type=static_size, metavar="HxW", help="fix height and width (batch stays free)")
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset")
    p.add_argument("--half", action="store_true", help="float16 weights, input and output")
    g = p.add_argument_group("network (read from the checkpoint; a value that contradicts it is an error)")
    g.add_argument("--netG")
    g.add_argument("--ngf", type=positive_int)
    g.add_argument("--norm", choices=NORMS)
    g.add_argument("--input_nc", type=positive_int)
    g.add_argument("--output_nc", type=positive_int)
    return p


def metadata(options: dict, source: str, dtype: torch.dtype, static: tuple[int, int] | None) -> dict[str, str]:
    """What a user of the file needs to feed it, as string pairs every format can carry."""
    multiple = size_multiple(options["netG"])
    size = f"{static[0]}x{static[1]}" if static else f"any multiple of {multiple}"
    kind = "float16" if dtype == torch.float16 else "float32"
    return {
        OPTIONS_KEY: json.dumps(options, sort_keys=True),
        "pyi2i.input": f"image: (N, {options['input_nc']}, H, W) {kind} in [-1, 1], channels RGB for 3, "
                       f"H and W {size}; no other preprocessing",
        "pyi2i.output": f"output: (N, {options['output_nc']}, H, W) {kind} in [-1, 1], the generator's raw tanh "
                        "output; to 8 bits: (y + 1) / 2 * 255",
        "pyi2i.size_multiple": str(multiple),
        "pyi2i.source": Path(source).name,
        "pyi2i.version": __version__,
    }


def _example_size(multiple: int, static: tuple[int, int] | None) -> tuple[int, int]:
    if static:
        for side in static:
            if side % multiple or side < max(multiple, 8):
                raise UserError(f"--static {static[0]}x{static[1]}: this network needs sides that are multiples "
                                f"of {multiple} (and at least {max(multiple, 8)})")
        return static
    side = max(2 * multiple, 32)  # no 1x1 level in the example: torch.export would specialise on it
    return side, side


def _onnx(G, example, meta, opset, static) -> tuple[bytes, callable]:
    import onnx
    import onnxruntime

    buffer = io.BytesIO()
    axes = {0: "batch"} if static else {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():  # the exporter's notes on tracing are not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(G, (example,), buffer, input_names=["image"], output_names=["output"], opset_version=opset,
                          dynamic_axes={"image": axes, "output": axes}, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = meta["pyi2i.input"] + "; " + meta["pyi2i.output"]
    data = model.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return data, lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def _torchscript(G, example, meta, opset, static) -> tuple[bytes, callable]:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript's deprecation notice: the format is what was asked for
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(G, example), buffer, _extra_files={"pyi2i.json": json.dumps(meta)})
        loaded = torch.jit.load(io.BytesIO(buffer.getvalue()))
    return buffer.getvalue(), loaded


def _pt2(G, example, meta, opset, static) -> tuple[bytes, callable]:
    from torch.fx.experimental import _config as fx_config

    dim = torch.export.Dim.DYNAMIC
    shapes = ({0: dim} if static else {0: dim, 2: dim, 3: dim},)
    # a batch of one, or a U-Net's 1x1 innermost level at the smallest size, must not fall outside
    # the program: size-oblivious tracing keeps sizes of 1 inside the dynamic range
    with fx_config.patch(backed_size_oblivious=True):
        program = torch.export.export(G, (example,), dynamic_shapes=shapes)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={"pyi2i.json": json.dumps(meta)})
    loaded = torch.export.load(io.BytesIO(buffer.getvalue())).module()
    return buffer.getvalue(), loaded


def _safetensors(G, example, meta, opset, static) -> tuple[bytes, callable]:
    from safetensors.torch import load, save

    data = save({k: v.detach().contiguous() for k, v in to_original(G).items()}, metadata=meta)
    options = json.loads(meta[OPTIONS_KEY])
    loaded = build_generator(options, impl="ref").to(example.dtype).eval()
    from_original(loaded, load(data), source="the safetensors export")
    return data, loaded


_EXPORTERS = {"onnx": _onnx, "torchscript": _torchscript, "pt2": _pt2, "safetensors": _safetensors}


@torch.no_grad()
def export(opt: argparse.Namespace) -> Path:
    given = {k: getattr(opt, k, None) for k in ("netG", "ngf", "norm", "input_nc", "output_nc")}
    G, options = load_generator(opt.checkpoint, opt.net, impl="ref", **given)
    G.eval()  # dropout off, batch norm's running statistics: a fixed function of the input
    dtype = torch.float16 if opt.half else torch.float32
    reference = copy.deepcopy(G)  # fp32, whatever the export's dtype
    G = G.to(dtype)
    multiple = size_multiple(options["netG"])
    h, w = _example_size(multiple, opt.static)
    meta = metadata(options, opt.checkpoint, dtype, opt.static)
    # batch 2: an example batch of one would fix the batch size in torch.export
    example = (torch.rand(2, options["input_nc"], h, w) * 2 - 1).to(dtype)
    data, run = _EXPORTERS[opt.format](G, example, meta, opt.opset, opt.static)
    # the probe differs from the example in batch and (unless fixed) width: the free axes are exercised
    seed = torch.Generator().manual_seed(0)
    probe = torch.rand(3, options["input_nc"], h, w + (0 if opt.static else multiple), generator=seed) * 2 - 1
    expected = reference(probe)
    got = run(probe.to(dtype)).float()
    difference = (got - expected).abs().max().item()
    log.info("%s export of %s (%s) checked against PyTorch on %s: largest difference %.3g",
             opt.format, options["netG"], opt.checkpoint, "x".join(map(str, probe.shape)), difference)
    if not difference <= TOLERANCE[dtype]:
        raise ExportMismatch(f"the {opt.format} export differs from PyTorch by {difference:.3g} (more than "
                             f"{TOLERANCE[dtype]:g}); nothing was written to {opt.output}")
    integrity.save_bytes(opt.output, data)  # with its checksum record, verified when loaded
    log.info("wrote %s", opt.output)
    return Path(opt.output)


def main(argv: list[str] | None = None) -> None:
    export(parser().parse_args(argv))


cli = console_script(main)

if __name__ == "__main__":
    cli()
