"""python -m pyi2i.export: each format runs like the original network, checks itself, and says what it holds."""

import json
import subprocess
import sys

import pytest
import torch

from pyi2i import checkpoints, integrity
from pyi2i.export import ExportMismatch, main
from pyi2i.models.original_format import build_generator
from pyi2i.testing import original
from pyi2i.translator import Translator

pytest.importorskip("onnxruntime")


def _original_net(netG, norm, ngf=2, input_nc=3, output_nc=3):
    """The original release's network with weights away from their initial values, in eval mode."""
    if netG.startswith("resnet"):
        net = original.ResnetGenerator(input_nc, output_nc, ngf, norm, False, int(netG[7:-6]))
    else:
        net = original.UnetGenerator(input_nc, output_nc, {"unet_256": 8, "unet_128": 7}[netG], ngf, norm, False)
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2)
    return net.eval()


def _export(tmp_path, weights_file, fmt, *extra):
    out = tmp_path / f"g.{fmt}"
    main(["--checkpoint", str(weights_file), "--format", fmt, "--output", str(out), *extra])
    return out


def _onnx_run(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"image": x.numpy()})[0]), session


@pytest.mark.parametrize("netG, norm", [("resnet_9blocks", "instance"), ("resnet_6blocks", "batch"),
                                        ("unet_256", "batch"), ("unet_128", "instance")])
def test_onnx_of_an_original_release_file_runs_like_the_original_network(tmp_path, netG, norm):
    net = _original_net(netG, norm)
    # saved through DataParallel, as the original release's multi-GPU runs do: keys start with module.
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "latest_net_G.pth")
    path = _export(tmp_path, tmp_path / "latest_net_G.pth", "onnx")
    side = 4 * 9 if netG.startswith("resnet") else int(netG[5:])
    x = torch.rand(2, 3, side, 2 * side) * 2 - 1  # not the export's example size: the axes are free
    got, session = _onnx_run(path, x)
    torch.testing.assert_close(got, net(x), rtol=0, atol=1e-4)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["pyi2i.generator"])["netG"] == netG and "[-1, 1]" in meta["pyi2i.input"]


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
@pytest.mark.parametrize("netG, norm", [("resnet_6blocks", "instance"), ("unet_128", "batch")])
def test_torchscript_and_pt2_run_like_the_original_network(tmp_path, fmt, netG, norm):
    net = _original_net(netG, norm)
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    path = _export(tmp_path, tmp_path / "latest_net_G.pth", fmt)
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()
    side = 4 * 10 if netG.startswith("resnet") else 128
    x = torch.rand(1, 3, 2 * side, side) * 2 - 1  # a batch of one, and the smallest U-Net width
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=1e-4)


def _training_checkpoint(tmp_path):
    """A CycleGAN training checkpoint whose G_B maps 1 channel to 3 (G_A: 3 to 1)."""
    opts = dict(netG="resnet_6blocks", ngf=4, norm="instance", use_dropout=False)
    nets = {"G_A": build_generator({**opts, "input_nc": 3, "output_nc": 1}),
            "G_B": build_generator({**opts, "input_nc": 1, "output_nc": 3})}
    config = dict(arch="cyclegan", netG="resnet_6blocks", ngf=4, norm="instance", input_nc=3, output_nc=1,
                  no_dropout=True)
    state = {"format": checkpoints.FORMAT, "config": config,
             "method": {"nets": {k: n.state_dict() for k, n in nets.items()}}}
    torch.save(state, tmp_path / "latest.pt")
    return nets, tmp_path / "latest.pt"


def test_safetensors_of_a_training_checkpoint_loads_back_through_the_translator(tmp_path):
    nets, ckpt = _training_checkpoint(tmp_path)
    path = _export(tmp_path, ckpt, "safetensors", "--net", "G_B")
    translator = Translator.from_checkpoint(path, "cpu")
    assert translator.options["input_nc"] == 1 and translator.options["output_nc"] == 3
    x = torch.rand(2, 1, 24, 28) * 2 - 1
    torch.testing.assert_close(translator(x), nets["G_B"].eval()(x), rtol=0, atol=1e-6)


def test_an_export_carries_a_checksum_record_and_a_corrupted_one_is_refused(tmp_path):
    _, ckpt = _training_checkpoint(tmp_path)
    path = _export(tmp_path, ckpt, "safetensors", "--net", "G_B")
    assert integrity.verify(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(integrity.CorruptFile, match="g.safetensors does not match its checksum record"):
        Translator.from_checkpoint(path, "cpu")


def test_static_size_half_precision_and_opset(tmp_path):
    net = _original_net("resnet_6blocks", "instance")
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    path = _export(tmp_path, tmp_path / "latest_net_G.pth", "onnx", "--static", "32x48", "--half", "--opset", "18")
    import onnx

    model = onnx.load(str(path))
    assert model.opset_import[0].version == 18
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 32, 48] and isinstance(dims[0], str)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    got, _ = _onnx_run(path, x.half())
    assert (got.float() - net(x)).abs().max() <= 2e-2
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        _onnx_run(path, torch.rand(1, 3, 32, 52).half())


def test_an_export_that_differs_from_pytorch_is_not_written(tmp_path, monkeypatch):
    import pyi2i.export as export

    net = _original_net("resnet_6blocks", "none")
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    real = export._EXPORTERS["torchscript"]

    def off_by_a_little(*args):
        data, run = real(*args)
        return data, lambda x: run(x) + 1e-3

    monkeypatch.setitem(export._EXPORTERS, "torchscript", off_by_a_little)
    with pytest.raises(ExportMismatch, match="differs from PyTorch by 0.001"):
        _export(tmp_path, tmp_path / "latest_net_G.pth", "torchscript")
    assert not (tmp_path / "g.torchscript").exists()


def test_an_option_that_contradicts_the_weights_is_one_line(tmp_path):
    torch.save(_original_net("resnet_6blocks", "instance").state_dict(), tmp_path / "latest_net_G.pth")
    r = subprocess.run([sys.executable, "-m", "pyi2i.export", "--checkpoint", str(tmp_path / "latest_net_G.pth"),
                        "--format", "onnx", "--output", str(tmp_path / "g.onnx"), "--ngf", "64"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "--ngf 64 contradicts the weights" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "g.onnx").exists()


def test_direction_picks_cyclegans_generator_and_leaves_pix2pix_alone(tmp_path):
    nets, ckpt = _training_checkpoint(tmp_path)
    assert Translator.from_checkpoint(ckpt, "cpu").options["input_nc"] == 3
    assert Translator.from_checkpoint(ckpt, "cpu", direction="BtoA").options["input_nc"] == 1
    state = torch.load(ckpt, weights_only=True)
    state["config"]["arch"] = "pix2pix"
    state["method"]["nets"] = {"G": state["method"]["nets"]["G_A"]}
    torch.save(state, tmp_path / "pix2pix.pt")
    assert Translator.from_checkpoint(tmp_path / "pix2pix.pt", "cpu", direction="BtoA").options["output_nc"] == 1
