import pytest
import torch

from pyi2i import checkpoints
from pyi2i.models import define_D, define_G
from pyi2i.models.original_format import (
    IncompatibleCheckpoint, from_original, infer_generator_options, strip_wrapper_prefixes, to_original,
)

RESNET9_KEYS = (["model.1", "model.4", "model.7"]
                + [f"model.{10 + k}.conv_block.{i}" for k in range(9) for i in (1, 5)]
                + ["model.19", "model.22", "model.26"])


def test_resnet_key_layout_is_the_documented_one():
    keys = to_original(define_G("resnet_9blocks", norm="instance", ngf=4))
    assert sorted(keys) == sorted(f"{p}.{n}" for p in RESNET9_KEYS for n in ("weight", "bias"))
    six = to_original(define_G("resnet_6blocks", norm="instance", ngf=4))
    assert {"model.16.weight", "model.19.weight", "model.23.weight"} <= set(six)


def test_discriminator_key_layouts_are_the_documented_ones():
    d = to_original(define_D("basic", 6, 4, norm="batch"))
    assert {k.rsplit(".", 1)[0] for k in d} == {f"model.{i}" for i in (0, 2, 3, 5, 6, 8, 9, 11)}
    p = to_original(define_D("pixel", 3, 4, norm="batch"))
    assert {k.rsplit(".", 1)[0] for k in p} == {"net.0", "net.2", "net.3", "net.5"}


def test_unet_key_layout_nests_as_the_original():
    keys = to_original(define_G("unet_256", norm="batch", ngf=4))
    assert "model.model.0.weight" in keys and "model.model.3.bias" in keys
    assert "model.model.1.model.2.running_mean" in keys  # first middle block's down norm
    innermost = "model.model" + ".1.model" + ".3.model" * 6
    assert f"{innermost}.1.weight" in keys and f"{innermost}.4.weight" in keys


@pytest.mark.parametrize("netG, norm, dropout", [("resnet_9blocks", "instance", False),
                                                 ("resnet_6blocks", "batch", True),
                                                 ("unet_256", "batch", True), ("unet_128", "none", False)])
def test_round_trip_through_a_file_is_bit_exact(tmp_path, netG, norm, dropout):
    G = define_G(netG, 3, 3, 8, norm, dropout)
    for m in G.modules():  # give batch norm some running state
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.num_batches_tracked += 7
    path = tmp_path / "latest_net_G.pth"
    torch.save(to_original(G), path)
    G2 = define_G(netG, 3, 3, 8, norm, dropout, init=False)
    checkpoints.load_original(G2, path)
    for (k, a), b in zip(G.state_dict().items(), G2.state_dict().values()):
        assert torch.equal(a, b), k
    again = to_original(G2)
    saved = torch.load(path)
    assert list(again) == list(saved) and all(torch.equal(again[k], saved[k]) for k in saved)


def test_wrapper_prefixes_and_stray_instance_norm_stats_are_accepted():
    G = define_G("resnet_6blocks", norm="instance", ngf=4)
    state = {f"module._orig_mod.{k}": v for k, v in to_original(G).items()}
    state["module.model.2.running_mean"] = torch.zeros(4)  # saved by old releases for instance norm
    state["module.model.2.running_var"] = torch.ones(4)
    state["module.model.2.num_batches_tracked"] = torch.tensor(0)
    G2 = define_G("resnet_6blocks", norm="instance", ngf=4, init=False)
    from_original(G2, state)
    assert torch.equal(G2.head.weight, G.head.weight)
    assert list(strip_wrapper_prefixes({"_orig_mod.module.a": 1})) == ["a"]


def test_mismatched_file_names_the_first_bad_layer():
    state = to_original(define_G("resnet_6blocks", norm="instance", ngf=4))
    with pytest.raises(IncompatibleCheckpoint, match=r"layer model\.1 .*shape \(4, 3, 7, 7\).*\(8, 3, 7, 7\)"):
        from_original(define_G("resnet_6blocks", norm="instance", ngf=8), state)
    with pytest.raises(IncompatibleCheckpoint, match=r"no entry 'model\.2\.weight'"):
        from_original(define_G("resnet_6blocks", norm="batch", ngf=4), state)
    with pytest.raises(IncompatibleCheckpoint, match="do not belong"):
        from_original(define_G("resnet_6blocks", norm="none", ngf=4), state)
    with pytest.raises(IncompatibleCheckpoint, match=r"model\.1[06]\.conv_block"):
        from_original(define_G("resnet_9blocks", norm="instance", ngf=4), state)


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "latest_net_G.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(IncompatibleCheckpoint, match="not a readable PyTorch checkpoint"):
        checkpoints.load_original(define_G("resnet_6blocks", ngf=4), bad)
    with pytest.raises(FileNotFoundError):
        checkpoints.load(tmp_path / "missing.pth")


@pytest.mark.parametrize("netG, norm, dropout", [("resnet_9blocks", "instance", False), ("resnet_6blocks", "batch", True),
                                                 ("unet_256", "batch", None), ("unet_128", "none", None)])
def test_generator_options_are_read_off_the_file(netG, norm, dropout):
    G = define_G(netG, 1, 3, 8, norm, bool(dropout))
    assert infer_generator_options(to_original(G)) == dict(netG=netG, ngf=8, input_nc=1, output_nc=3, norm=norm,
                                                           use_dropout=dropout)
