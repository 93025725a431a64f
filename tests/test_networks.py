import pytest
import torch
import torch.nn as nn

import pyi2i.testing.original as orig
from pyi2i.models import ResnetGenerator, UnetGenerator, define_D, define_G, init_weights
from pyi2i.models.original_format import to_original


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("build, millions", [
    (lambda: define_G("resnet_9blocks", 3, 3, 64, "instance"), 11.378),
    (lambda: define_G("unet_256", 3, 3, 64, "batch", use_dropout=True), 54.414),
    (lambda: define_D("basic", 3, 64, norm="instance"), 2.765),
    (lambda: define_D("basic", 6, 64, norm="batch"), 2.769),
])
def test_parameter_counts_match_the_reference(build, millions):
    assert round(n_params(build()) / 1e6, 3) == millions


@pytest.mark.parametrize("netG, size", [("resnet_9blocks", 20), ("resnet_6blocks", 16), ("unet_128", 128),
                                        ("unet_256", 256)])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_generator_shapes(netG, size, norm):
    G = define_G(netG, 3, 1, ngf=4, norm=norm)
    out = G(torch.randn(2, 3, size, size))
    assert out.shape == (2, 1, size, size)
    assert out.abs().max() <= 1


def test_patchgan_is_70x70_and_gives_30x30_at_256():
    D = define_D("basic", 3, ndf=4, norm="instance")
    assert D(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert define_D("n_layers", 3, ndf=4, n_layers_D=2)(torch.randn(1, 3, 64, 64)).shape == (1, 1, 14, 14)
    assert define_D("pixel", 3, ndf=4)(torch.randn(1, 3, 9, 7)).shape == (1, 1, 9, 7)


def oracle_and_ours(kind, norm, dropout=False):
    if kind == "resnet":
        return orig.ResnetGenerator(3, 2, 4, norm, dropout, 3), ResnetGenerator(3, 2, 4, norm, dropout, 3)
    if kind == "unet":
        return orig.UnetGenerator(3, 2, 6, 4, norm, dropout), UnetGenerator(3, 2, 6, 4, norm, dropout)
    if kind == "nlayer":
        return orig.NLayerDiscriminator(5, 4, 3, norm), define_D("n_layers", 5, 4, 3, norm)
    return orig.PixelDiscriminator(5, 4, norm), define_D("pixel", 5, 4, norm=norm)


@pytest.mark.parametrize("kind", ["resnet", "unet", "nlayer", "pixel"])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_same_keys_and_outputs_as_the_original_networks(kind, norm):
    oracle, ours = oracle_and_ours(kind, norm)
    init_weights(ours, "normal", 0.5)
    with torch.no_grad():  # non-trivial batch-norm state, so a misplaced layer shows
        for m in ours.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    oracle.load_state_dict(to_original(ours), strict=True)  # the key sets are identical
    x = torch.randn(2, 3 if kind in ("resnet", "unet") else 5, 64, 64)
    for train in (True, False):
        oracle.train(train), ours.train(train)
        torch.testing.assert_close(ours(x.clone()), oracle(x.clone()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_dropout_positions_match_the_original(kind):
    """In training mode and from one seed, a dropout layer elsewhere masks other activations."""
    oracle, ours = oracle_and_ours(kind, "batch", dropout=True)
    oracle.load_state_dict(to_original(ours), strict=True)
    x = torch.randn(1, 3, 64, 64)
    outputs = []
    for net in (ours, oracle):
        torch.manual_seed(1)
        outputs.append(net.train()(x.clone()))
    torch.testing.assert_close(*outputs)


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_types(init_type):
    G = define_G("resnet_6blocks", 3, 3, 8, "batch", init_type=init_type, init_gain=0.02)
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.bias is None or torch.all(m.bias == 0) for m in convs)
    assert all(torch.all(m.bias == 0) for m in bns)
    w = convs[3].weight.detach()  # 32 x 32 x 3 x 3: fan_in = fan_out = 288
    expected_std = {"normal": 0.02, "xavier": 0.02 * (2 / (288 + 288)) ** 0.5, "kaiming": (2 / 288) ** 0.5,
                    "orthogonal": 0.02 / 288 ** 0.5}[init_type]
    assert w.std().item() == pytest.approx(expected_std, rel=0.05)
    if init_type == "orthogonal":  # rows orthogonal, each of norm init_gain
        rows = w.flatten(1)
        torch.testing.assert_close(rows @ rows.T, 0.02**2 * torch.eye(32), atol=1e-7, rtol=0)
    bn_weights = torch.cat([m.weight.detach() for m in bns])  # N(1, init_gain), not PyTorch's constant 1
    assert bn_weights.mean().item() == pytest.approx(1.0, abs=0.005)
    assert bn_weights.std().item() == pytest.approx(0.02, rel=0.2)


def test_bias_rule():
    G = define_G("resnet_9blocks", norm="batch")
    assert G.stem.conv.bias is None and G.head.bias is not None
    D = define_D("basic", 3, norm="batch")
    assert D.first.bias is not None and D.last.bias is not None and D.blocks[0].conv.bias is None
    assert define_G("unet_256", norm="batch").model.up_conv.bias is not None
    assert all(m.bias is not None for m in define_G("resnet_6blocks", norm="instance").modules()
               if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("bad", [dict(netG="resnet_7blocks"), dict(netG="resnet_9blocks", norm="group")])
def test_bad_names_are_rejected(bad):
    with pytest.raises(ValueError, match="must be one of"):
        define_G(**bad)
