"""pyi2i.Translator: architecture read off the weights, every input kind, any size, tiling."""

import numpy as np
import pytest
import torch
from PIL import Image

import pyi2i
from pyi2i.errors import UserError
from pyi2i.models.original_format import (
    IncompatibleCheckpoint, build_generator, infer_generator_options, size_multiple, to_original,
)
from pyi2i.tiling import tile_starts
from pyi2i.translator import Translator, padded_size


def _options(netG, norm="instance", ngf=4, input_nc=3, output_nc=3, use_dropout=False):
    return dict(netG=netG, ngf=ngf, norm=norm, input_nc=input_nc, output_nc=output_nc, use_dropout=use_dropout)


def _saved(tmp_path, options, name="latest_net_G.pth", std=0.2):
    G = build_generator(options)
    for p in G.parameters():  # away from the initial values, so that a wrong load shows
        p.data.normal_(0, std)
    torch.save(to_original(G), tmp_path / name)
    return G.eval(), tmp_path / name


@pytest.mark.parametrize("options", [
    _options("resnet_3blocks"), _options("resnet_12blocks", "batch", use_dropout=True), _options("resnet_4blocks", "batch"),
    _options("resnet_0blocks", "none"),
    _options("unet_64", "instance", input_nc=1), _options("unet_512", "none", output_nc=1),
])
def test_any_depth_and_width_is_read_off_the_weights(tmp_path, options):
    G, path = _saved(tmp_path, options)
    found = infer_generator_options(to_original(G))
    expected = {**options, "use_dropout": None if options["netG"].startswith("unet") else options["use_dropout"]}
    assert found == expected
    if options["netG"] != "unet_512":  # 512 px is too slow to run here; the options say enough
        translator = Translator.from_checkpoint(path, "cpu")
        x = torch.rand(1, options["input_nc"], 64, 64) * 2 - 1
        torch.testing.assert_close(translator.translate_tensor(x), G(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("given, message", [
    (dict(ngf=8), "--ngf 8 contradicts the weights, which hold a generator with ngf 4"),
    (dict(netG="resnet_9blocks"), "--netG resnet_9blocks contradicts"),
    (dict(norm="batch"), "--norm batch contradicts"),
    (dict(input_nc=1), "--input_nc 1 contradicts"),
])
def test_an_option_that_contradicts_the_weights_is_an_error(tmp_path, given, message):
    _, path = _saved(tmp_path, _options("resnet_6blocks"))
    with pytest.raises(IncompatibleCheckpoint, match=message):
        Translator.from_checkpoint(path, "cpu", **given)
    assert Translator.from_checkpoint(path, "cpu", ngf=4, netG="resnet_6blocks").options["ngf"] == 4


def test_every_input_kind_round_trips(tmp_path):
    _, path = _saved(tmp_path, _options("resnet_6blocks"))
    translator = pyi2i.Translator.from_checkpoint(path, device="cpu")
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((20, 24), (31, 17), (20, 24))]
    expected = [translator(a) for a in arrays]  # (H, W, C) uint8 each
    for a, e in zip(arrays, expected):
        assert e.shape == a.shape and e.dtype == np.uint8
    pil = translator(Image.fromarray(arrays[1]))
    assert isinstance(pil, Image.Image) and pil.size == (17, 31) and np.array_equal(np.asarray(pil), expected[1])
    listed = translator([Image.fromarray(a) for a in arrays])  # mixed sizes in one list keep their order
    assert [np.asarray(p).tolist() for p in listed] == [e.tolist() for e in expected]
    stacked = translator(np.stack([arrays[0], arrays[2]]))
    assert np.array_equal(stacked, np.stack([expected[0], expected[2]]))
    x = torch.from_numpy(arrays[1]).permute(2, 0, 1).double() / 127.5 - 1
    y = translator(x)
    assert y.dtype == torch.float64 and y.shape == x.shape
    assert np.array_equal(translator.to_uint8(y[None].float())[0], expected[1])
    assert translator(x[None]).shape == (1, 3, 31, 17)
    with pytest.raises(UserError, match="float in"):
        translator(torch.zeros(3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize("netG", ["resnet_6blocks", "unet_128"])
def test_odd_sizes_come_back_at_the_input_size(tmp_path, netG):
    G, path = _saved(tmp_path, _options(netG))
    translator = Translator.from_checkpoint(path, "cpu")
    for h, w in ((255, 257), (3, 2)):  # U-Net: 3x2 mirrored up to 128x128 in steps
        assert translator.translate_tensor(torch.rand(1, 3, h, w) * 2 - 1).shape == (1, 3, h, w)
    m = max(size_multiple(netG), 16)
    x = torch.rand(2, 3, m, 2 * m) * 2 - 1  # already a multiple: exactly the network's output
    torch.testing.assert_close(translator.translate_tensor(x), G(x), rtol=0, atol=1e-6)
    # mirrored padding: the result on the left part equals the network's on the mirrored whole
    h, w = m - 3, 2 * m - 5
    ph, pw = padded_size(h, size_multiple(netG)) - h, padded_size(w, size_multiple(netG)) - w
    assert ph > 0 and pw > 0
    part = x[..., :h, :w]
    mirrored = torch.cat([part, part.flip(-1)[..., 1:1 + pw]], -1)
    mirrored = torch.cat([mirrored, mirrored.flip(-2)[..., 1:1 + ph, :]], -2)
    torch.testing.assert_close(translator.translate_tensor(part), G(mirrored)[..., :h, :w], rtol=0, atol=1e-6)
    with pytest.raises(UserError, match="1x1 pixels is too small to translate: it needs at least 2x2"):
        translator(np.zeros((1, 1, 3), np.uint8))


def _band_mask(size, tile, overlap, multiple):
    """True where more than one tile covers a position along one side."""
    count = torch.zeros(size)
    for s in tile_starts(size, tile, overlap, multiple):
        count[s:s + tile] += 1
    return count > 1


def test_tiled_output_equals_untiled_away_from_the_blend_bands(tmp_path):
    # no norm and one block: a receptive field of 47 px, so 24 px from a tile's edge the tile sees
    # what the whole image shows; weights of a trained network's size (not saturating the tanh)
    G, path = _saved(tmp_path, _options("resnet_1blocks", "none", ngf=8), std=0.05)
    whole = Translator.from_checkpoint(path, "cpu")
    tiled = Translator.from_checkpoint(path, "cpu", tile=128, tile_overlap=48)
    x = torch.rand(1, 3, 150, 300) * 2 - 1
    a, b = whole.translate_tensor(x), tiled.translate_tensor(x)
    assert b.shape == a.shape
    rows, cols = _band_mask(152, 128, 48, 4)[:150], _band_mask(300, 128, 48, 4)
    band = rows[:, None] | cols[None, :]
    assert band.any() and (~band).any() and len(tile_starts(300, 128, 48, 4)) == 4
    scale = a.abs().max()
    torch.testing.assert_close(b[..., ~band], a[..., ~band], rtol=0, atol=1e-5 * scale)
    # inside the bands, each tile's edge effects get the window's small weight: within 1% here
    assert (b - a)[..., band].abs().max() <= 0.01 * scale


def test_bf16_autocast_stays_near_fp32(tmp_path):
    G, path = _saved(tmp_path, _options("resnet_6blocks"), std=0.05)
    x = torch.rand(2, 3, 32, 36) * 2 - 1
    fp32 = Translator.from_checkpoint(path, "cpu").translate_tensor(x)
    bf16 = Translator.from_checkpoint(path, "cpu", amp="bf16").translate_tensor(x)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # it did run in bf16
    assert (bf16 - fp32).abs().max() <= 0.05 * fp32.abs().max()
    with pytest.raises(UserError, match="amp='int8'"):
        Translator.from_checkpoint(path, "cpu", amp="int8")


def test_graph_replays_per_shape_give_the_eager_results(tmp_path):
    G, path = _saved(tmp_path, _options("resnet_2blocks"), std=0.05)
    eager = Translator.from_checkpoint(path, "cpu")
    graphed = Translator.from_checkpoint(path, "cpu", cuda_graphs=True)
    # three shapes, each seen past its warm-up, interleaved, so replays must read each call's own input
    inputs = [torch.rand(n, 3, h, w) * 2 - 1 for _ in range(4) for n, h, w in ((1, 20, 24), (3, 16, 16), (1, 20, 24))]
    kept = [graphed.translate_tensor(x) for x in inputs]  # results kept across later replays
    for x, y in zip(inputs, kept):
        torch.testing.assert_close(y, eager.translate_tensor(x), rtol=0, atol=0)
    forward = graphed.forward
    # each shape ran eagerly `warmup` times, was captured on the next call and replayed after
    assert len(forward.graphs) == 2 and all(count == forward.warmup + 1 for count in forward.seen.values())
