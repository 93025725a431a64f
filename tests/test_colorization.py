"""Colorization: the sRGB <-> Lab conversion against scikit-image, the colorization dataset, and the
method's training step and RGB visuals."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pyi2i.config import ConfigError, DataConfig, LossConfig, ModelConfig, OptimConfig, SpeedConfig
from pyi2i.data import DataError, create_loader
from pyi2i.data.colorization import ColorizationDataset
from pyi2i.data.images import load_rgb
from pyi2i.data.lab import l_ab_to_image, l_ab_to_rgb, lab_to_rgb, rgb_to_l_ab, rgb_to_lab
from pyi2i.data.transforms import apply_transform, get_params
from pyi2i.engine.colorization import Colorization, rgb_visuals
from pyi2i.engine.graphs import CudaGraphStep
from pyi2i.engine.pix2pix import Pix2Pix
from pyi2i.reports import to_uint8

CPU = torch.device("cpu")
# Largest difference from scikit-image's float64 result, by the precision the conversion runs in:
# (Lab units, RGB in [0, 1]).
TOLERANCES = {torch.float64: (1e-9, 1e-12), torch.float32: (2e-4, 1e-5)}
SHAPES = [(3, 17, 23), (2, 3, 5, 7), (3, 1, 1), (1, 3, 64, 1)]
# sRGB primaries and extremes in Lab (D65), as published colour tables give them. The sRGB matrix and
# the white point that scikit-image uses disagree in the fourth digit, so white comes out a few
# thousandths off neutral there (and here).
KNOWN = {
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0): (53.2408, 80.0925, 67.2032),
    (0.0, 1.0, 0.0): (87.7347, -86.1827, 83.1793),
    (0.0, 0.0, 1.0): (32.2970, 79.1875, -107.8602),
}


def skimage_color():
    return pytest.importorskip("skimage.color", reason="scikit-image is not installed: pip install scikit-image")


def random_rgb(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random(shape))


def random_lab(shape, seed=0):
    """Lab values over the whole range a network might output, most of them outside the sRGB gamut."""
    rng = np.random.default_rng(seed)
    n, rest = shape[:-3], shape[-2:]
    lab = np.stack([rng.uniform(0, 100, (*n, *rest)), rng.uniform(-128, 127, (*n, *rest)),
                    rng.uniform(-128, 127, (*n, *rest))], axis=-3)
    return torch.from_numpy(lab)


# ---- the conversion ----

@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_rgb_to_lab_matches_skimage(shape, dtype):
    color = skimage_color()
    rgb = random_rgb(shape)
    expected = color.rgb2lab(rgb.numpy(), channel_axis=-3)
    got = rgb_to_lab(rgb.to(dtype))
    assert got.dtype == dtype and got.shape == rgb.shape
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=TOLERANCES[dtype][0])


@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_lab_to_rgb_matches_skimage(shape, dtype):
    color = skimage_color()
    lab = random_lab(shape)
    with warnings.catch_warnings():  # scikit-image warns about the colours it clamps (Z < 0)
        warnings.simplefilter("ignore")
        expected = color.lab2rgb(lab.numpy(), channel_axis=-3)
    got = lab_to_rgb(lab.to(dtype))
    assert got.dtype == dtype and got.shape == lab.shape
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=TOLERANCES[dtype][1])


@pytest.mark.parametrize("rgb, lab", list(KNOWN.items()))
def test_known_colours(rgb, lab):
    got = rgb_to_lab(torch.tensor(rgb, dtype=torch.float64).view(3, 1, 1)).flatten()
    np.testing.assert_allclose(got.numpy(), lab, atol=1e-2)
    back = lab_to_rgb(torch.tensor(lab, dtype=torch.float64).view(3, 1, 1)).flatten()
    np.testing.assert_allclose(back.numpy(), rgb, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip(shape):
    rgb = random_rgb(shape, seed=1)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)).numpy(), rgb.numpy(), atol=1e-12)
    L, ab = rgb_to_l_ab(rgb)
    assert L.shape[-3] == 1 and ab.shape[-3] == 2
    np.testing.assert_allclose(l_ab_to_rgb(L, ab).numpy(), rgb.numpy(), atol=1e-12)


def test_layouts_and_low_precision_inputs():
    rgb = random_rgb((2, 3, 6, 5)).float()
    expected = rgb_to_lab(rgb)
    channels_last = rgb.contiguous(memory_format=torch.channels_last)
    non_contiguous = torch.stack([rgb, rgb], dim=-1)[..., 0]
    for x in (channels_last, non_contiguous):  # vectorised or not, float32 powers differ in the last bit
        torch.testing.assert_close(rgb_to_lab(x), expected, rtol=1e-6, atol=1e-5)
    # Half precision inputs are converted in float32: the result is that of the rounded input.
    for dtype in (torch.float16, torch.bfloat16):
        low = rgb.to(dtype)
        assert rgb_to_lab(low).dtype == torch.float32
        torch.testing.assert_close(rgb_to_lab(low), rgb_to_lab(low.float()), rtol=0, atol=0)


def test_scaling_of_l_and_ab():
    L, ab = rgb_to_l_ab(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(3, 1, 1))
    assert L.item() == pytest.approx(53.2408 / 50 - 1, abs=1e-5)
    np.testing.assert_allclose(ab.flatten().numpy(), [80.0925 / 110, 67.2032 / 110], atol=1e-5)
    white_L, white_ab = rgb_to_l_ab(torch.ones(3, 1, 1))
    assert white_L.item() == pytest.approx(1.0, abs=1e-5) and white_ab.abs().max() < 1e-4


def test_wrong_channels_are_refused():
    with pytest.raises(ValueError, match="3 channels at dim -3"):
        rgb_to_lab(torch.rand(4, 8, 8))
    with pytest.raises(ValueError, match="3 channels at dim -3"):
        lab_to_rgb(torch.rand(8, 8))
    with pytest.raises(ValueError, match=r"L of shape \(\.\.\., 1, H, W\) and ab of shape \(\.\.\., 2, H, W\)"):
        l_ab_to_rgb(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="L of shape"):
        l_ab_to_rgb(torch.rand(1, 8, 8), torch.rand(2, 8, 9))


def test_image_of_l_and_ab_matches_the_original_conversion():
    """The original writes skimage's lab2rgb(Lab) * 255, truncated to uint8."""
    color = skimage_color()
    L = torch.rand(2, 1, 9, 7) * 2 - 1
    ab = torch.rand(2, 2, 9, 7) * 2 - 1  # a network's tanh output: many colours out of gamut
    image = l_ab_to_image(L, ab)
    assert image.dtype == np.uint8 and image.shape == (2, 9, 7, 3)
    lab = torch.cat([(L.double() + 1) * 50, ab.double() * 110], dim=1).permute(0, 2, 3, 1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = (color.lab2rgb(lab) * 255).astype(np.uint8)
    np.testing.assert_array_equal(image, expected)
    assert l_ab_to_image(L[0], ab[0]).shape == (9, 7, 3)


# ---- the dataset ----

def gradient(w, h, offset=0):
    """A colour image in which every crop position and flip gives a different picture."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 7 + yy * 3 + offset + 80 * c) % 256 for c in range(3)], -1).astype(np.uint8)


def gradient_root(tmp_path, n: int, w: int, h: int, step: int):
    """DATAROOT with train/ holding `n` gradient images of w x h."""
    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(gradient(w, h, offset=step * i)).save(folder / f"{i}.png")
    return tmp_path


@pytest.fixture
def colour_root(tmp_path):
    """DATAROOT with train/: four gradient images of 24x18 and one flat red one."""
    root = gradient_root(tmp_path, 4, 24, 18, step=40)
    Image.fromarray(np.full((18, 24, 3), (255, 0, 0), np.uint8)).save(root / "train" / "red.png")
    return root


def colorization_data(root, **overrides) -> DataConfig:
    return DataConfig(**{**dict(dataroot=str(root), load_size=20, crop_size=16), **overrides})


def dataset(root, seed=0, input_nc=1, output_nc=2, **overrides):
    return ColorizationDataset(colorization_data(root, **overrides), input_nc=input_nc, output_nc=output_nc, seed=seed)


def test_samples_hold_l_and_ab(colour_root):
    data = dataset(colour_root)
    assert len(data) == 5
    for sample in data:
        assert sample["A"].shape == (1, 16, 16) and sample["B"].shape == (2, 16, 16)
        assert sample["A"].dtype == sample["B"].dtype == torch.float32
        assert sample["A_paths"] == sample["B_paths"] and sample["A_paths"].endswith(".png")
        assert sample["A"].min() >= -1 and sample["A"].max() <= 1
        assert sample["B"].abs().max() <= 1  # |a|, |b| < 110 over the whole sRGB gamut


def test_a_flat_colour_gives_its_l_and_ab(colour_root):
    sample = dataset(colour_root)[4]
    assert sample["A_paths"].endswith("red.png")
    torch.testing.assert_close(sample["A"], torch.full((1, 16, 16), 53.2408 / 50 - 1), rtol=0, atol=1e-4)
    expected_ab = torch.tensor([80.0925 / 110, 67.2032 / 110]).view(2, 1, 1).expand(2, 16, 16)
    torch.testing.assert_close(sample["B"], expected_ab, rtol=0, atol=1e-4)


@pytest.mark.parametrize("no_flip", [False, True])
def test_samples_match_skimage_on_the_preprocessed_image(colour_root, no_flip):
    """What the original computes: rgb2lab of the cropped and flipped 8-bit image, L / 50 - 1, ab / 110
    (without a resize, whose interpolation would be the same on both sides)."""
    color = skimage_color()
    data = dataset(colour_root, preprocess="crop", no_flip=no_flip)
    for index in range(len(data)):
        path = data.paths[index]
        image = load_rgb(path)
        params = get_params(data.data, image.size, data.rng(index), path)
        x, y = params.crop_pos
        image = image.crop((x, y, x + 16, y + 16))
        if params.flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        lab = color.rgb2lab(np.asarray(image)).astype(np.float32).transpose(2, 0, 1)
        sample = data[index]
        np.testing.assert_allclose(sample["A"].numpy(), lab[:1] / 50 - 1, atol=2e-6)
        np.testing.assert_allclose(sample["B"].numpy(), lab[1:] / 110, atol=2e-6)


def test_l_and_ab_share_the_crop_and_flip(colour_root):
    """Both halves are the sample's one preprocessed image: together they give back its RGB."""
    data = dataset(colour_root)
    flips, crops = set(), set()
    for epoch in range(4):
        data.set_epoch(epoch)
        for index in range(len(data)):
            path = data.paths[index]
            image = load_rgb(path)
            params = get_params(data.data, image.size, data.rng(index), path)
            flips.add(params.flip)
            crops.add(params.crop_pos)
            rgb = (apply_transform(data.data, image, params, channels=3) + 1) / 2
            sample = data[index]
            torch.testing.assert_close(l_ab_to_rgb(sample["A"], sample["B"]), rgb, rtol=0, atol=1e-5)
    assert flips == {False, True} and len(crops) > 1  # the check saw crops and flips of every kind


def test_samples_follow_the_seed_and_epoch(colour_root):
    def samples(seed, epoch=0):
        data = dataset(colour_root, seed=seed)
        data.set_epoch(epoch)
        return [torch.cat([s["A"], s["B"]]) for s in data]

    first = samples(0)
    assert all(torch.equal(a, b) for a, b in zip(first, samples(0)))
    assert not all(torch.equal(a, b) for a, b in zip(first, samples(1)))
    assert not all(torch.equal(a, b) for a, b in zip(first, samples(0, epoch=1)))


def test_loader_batches(colour_root):
    data = dataset(colour_root)
    batch = next(iter(create_loader(data, batch_size=2, shuffle=True, num_workers=0, seed=0, epoch=0)))
    assert batch["A"].shape == (2, 1, 16, 16) and batch["B"].shape == (2, 2, 16, 16)
    assert len(batch["A_paths"]) == 2 and batch["A_paths"] == batch["B_paths"]


def test_the_phase_folder_is_read(colour_root):
    (colour_root / "test").mkdir()
    Image.fromarray(gradient(20, 20)).save(colour_root / "test" / "only.png")
    data = dataset(colour_root, phase="test")
    assert len(data) == 1 and data[0]["A_paths"].endswith("only.png")


@pytest.mark.parametrize("options, message", [
    (dict(input_nc=3), "needs --input_nc 1 --output_nc 2 --direction AtoB, got --input_nc 3"),
    (dict(output_nc=3), "got --input_nc 1 --output_nc 3"),
    (dict(direction="BtoA"), "--direction BtoA"),
])
def test_other_channels_or_direction_are_refused(colour_root, options, message):
    with pytest.raises(DataError, match=message):
        dataset(colour_root, **options)


def test_missing_phase_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=r"train not found: expected train/ under DATAROOT holding colour images"):
        dataset(tmp_path)


def test_demo_renderings_serve_as_colour_images(demo_root):
    data = dataset(demo_root / "unpaired", phase="trainB")
    sample = data[0]
    assert sample["A"].shape == (1, 16, 16) and sample["B"].abs().max() > 0.05  # coloured, not gray


def test_the_dali_loader_refuses_what_it_cannot_render(colour_root):
    from pyi2i.data import dali

    with pytest.raises(ValueError, match="ColorizationDataset changes its images after loading them"):
        dali.DaliLoader(dataset(colour_root), batch_size=1, shuffle=False, seed=0, device=CPU)


# ---- the method ----

def sections(**model):
    return (ModelConfig(**{**dict(arch="pix2pix", input_nc=1, output_nc=2, netG="unet_128", ngf=4, ndf=4,
                                  norm="batch", no_dropout=False), **model}),
            LossConfig(gan_mode="vanilla", pool_size=0), OptimConfig(), SpeedConfig(impl="ref"))


@pytest.fixture
def big_colour_root(tmp_path):
    """Colour images a U-Net of 128 pixels can take."""
    return gradient_root(tmp_path, 3, 140, 132, step=50)


def batches(root, n):
    data = dataset(root, load_size=136, crop_size=128)
    loader = create_loader(data, batch_size=2, shuffle=True, num_workers=0, seed=0, epoch=0)
    batch = next(iter(loader))
    return [batch] * n


def assert_rgb_visuals(method, batch):
    assert tuple(method.visuals) == method.visual_names == ("real_A", "real_B_rgb", "fake_B_rgb")
    for name, image in method.visuals.items():
        assert image.shape == (2, 3, 128, 128) and image.dtype == torch.float32, name
        assert image.min() >= -1 and image.max() <= 1, name
    real_A = method.visuals["real_A"]
    assert torch.equal(real_A[:, :1], batch["A"]) and torch.equal(real_A[:, :1], real_A[:, 2:])
    # the true colours: the RGB image the sample was made from
    torch.testing.assert_close((method.visuals["real_B_rgb"] + 1) / 2, l_ab_to_rgb(batch["A"], batch["B"]))


def test_training_steps(big_colour_root):
    data = batches(big_colour_root, 3)
    method = Colorization(*sections(), CPU)
    G = method.nets["G"]
    before = [p.detach().clone() for p in G.parameters()]
    for batch in data:
        losses = method.step(batch)
        assert set(losses) == set(method.loss_names) and all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert G(data[0]["A"]).shape == (2, 2, 128, 128)
    assert_rgb_visuals(method, data[-1])
    assert not torch.allclose(method.visuals["fake_B_rgb"], method.visuals["real_B_rgb"])


def test_losses_are_those_of_pix2pix(big_colour_root):
    batch = batches(big_colour_root, 1)[0]
    torch.manual_seed(0)
    colorization = Colorization(*sections(), CPU)
    torch.manual_seed(0)
    pix2pix = Pix2Pix(*sections(), CPU)
    torch.manual_seed(1)
    ours = colorization.step(batch)
    torch.manual_seed(1)
    theirs = pix2pix.step(batch)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    torch.testing.assert_close((colorization.visuals["fake_B_rgb"] + 1) / 2,
                               l_ab_to_rgb(batch["A"], pix2pix.visuals["fake_B"]))


def test_graph_shaped_steps_keep_rgb_visuals(big_colour_root):
    """Under --cuda-graphs each replay copies the step's visuals into the captured ones."""
    data = batches(big_colour_root, 3)  # eager, captured, replayed into the captured outputs
    step = CudaGraphStep(Colorization(*sections(), CPU), warmup=1)
    for batch in data:
        losses = step(batch)
    assert len(step.graphs) == 1 and all(torch.isfinite(v) for v in losses.values())
    assert_rgb_visuals(step.method, data[-1])


def test_visuals_as_images_are_the_original_files():
    """Sample grids show what the original's test.py writes: L tiled to gray, and lab2rgb * 255."""
    L, real_ab, fake_ab = torch.rand(2, 1, 9, 7) * 2 - 1, torch.rand(2, 2, 9, 7) - 0.5, torch.rand(2, 2, 9, 7) * 2 - 1
    visuals = rgb_visuals(L, real_ab, fake_ab)
    np.testing.assert_array_equal(to_uint8(visuals["real_A"]), to_uint8(L))
    for name, ab in (("real_B_rgb", real_ab), ("fake_B_rgb", fake_ab)):
        # within a level: the [-1, 1] scale rounds in float32 before truncation
        difference = to_uint8(visuals[name]).astype(int) - l_ab_to_image(L, ab)
        assert np.abs(difference).max() <= 1, name


@pytest.mark.parametrize("channels", [dict(input_nc=3), dict(output_nc=3)])
def test_other_channels_are_refused(channels):
    with pytest.raises(ConfigError, match="--model colorization .* needs --input_nc 1 --output_nc 2"):
        Colorization(*sections(**channels), CPU)
