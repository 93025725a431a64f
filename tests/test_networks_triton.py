"""Whole networks with impl='triton' against impl='ref' from identical weights: the output and the
gradient of every parameter and of the input."""

import pytest
import torch

from parity import assert_matches
from parity import interpret_triton_on_cpu  # noqa: F401  autouse: Triton's CPU interpreter without a GPU

pytest.importorskip("triton", reason="the Triton backend needs the triton package (pip install triton)")

from pyi2i.models import define_D, define_G  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

NETWORKS = {  # name: (build(impl), input side); the PatchGAN needs 32 pixels to keep a 1x1 map
    "resnet_6blocks": (lambda impl: define_G("resnet_6blocks", 3, 3, ngf=8, norm="instance", impl=impl), 16),
    "basic_D": (lambda impl: define_D("basic", 3, ndf=8, norm="instance", impl=impl), 32),
}


def _output_and_grads(net, x, out, dy):
    """out, and the gradients of <out, dy> for the input and each parameter, by name."""
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(out, [x, *params.values()], dy)
    return {"output": out, **dict(zip(["input", *params], grads))}


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_triton_network_matches_reference(monkeypatch, network, layout):
    monkeypatch.delenv("PYI2I_IMPL", raising=False)
    build, size = NETWORKS[network]
    ref = build("ref").to(DEVICE, memory_format=layout)
    ours = build("triton").to(DEVICE, memory_format=layout)
    ours.load_state_dict(ref.state_dict())
    ref64 = build("ref").to(DEVICE, torch.float64, memory_format=layout)
    ref64.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, size, size, device=DEVICE).contiguous(memory_format=layout).requires_grad_()
    x64 = x.detach().double().requires_grad_()

    out_ref = ref(x)
    dy = torch.randn_like(out_ref)
    results = {
        "ref": _output_and_grads(ref, x, out_ref, dy),
        "ours": _output_and_grads(ours, x, ours(x), dy),
        "ref64": _output_and_grads(ref64, x64, ref64(x64), dy.double()),
    }
    # Against float64 truth, Triton must be about as accurate as the float32 reference. Conv biases
    # before an instance norm have a gradient of 0 in exact arithmetic: theirs is rounding noise,
    # judged at the scale of the network's largest gradient.
    largest = max(truth.abs().max().item() for truth in results["ref64"].values())
    for name, truth in results["ref64"].items():
        scale = truth.abs().max().item()
        assert_matches(name, results["ours"][name], results["ref"][name], truth, op="network", dtype=torch.float32,
                       scale=scale if scale > 1e-6 * largest else largest)
