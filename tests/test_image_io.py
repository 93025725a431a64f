"""Images beyond 8-bit RGB: one channel in and out, 16-bit PNG and TIFF, NumPy arrays and multi-page
TIFF of any channel count; the DALI loader refusing what it would decode with less precision."""

import logging
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_dataset, training_options
from pyi2i.data import DataError, make_dataset
from pyi2i.data.decode import FloatImage, load_image, needs_float_path, write_png16
from pyi2i.errors import UserError
from pyi2i.models import define_G
from pyi2i.models.original_format import to_original
from pyi2i.reports import image_grid
from pyi2i.translate import main as translate_main

try:
    import tifffile
except ImportError:  # the optional tiff extra
    tifffile = None
needs_tifffile = pytest.mark.skipif(tifffile is None, reason="TIFF with several pages or 16-bit colour needs tifffile")

STEP_16 = 2 / 65535  # one 16-bit level in the [-1, 1] scale
LEVEL_8 = 2 / 255


def ramp16(w, h, channels, start=30000, step=3):
    """uint16 (h, w, channels): steps of `step` 16-bit levels (far below one 8-bit level), different
    in every row and channel, so that every crop and flip gives another picture."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([start + step * xx + 5 * yy + 1000 * c for c in range(channels)], -1).astype(np.uint16)


def write_png16_filtered(path, values):
    """A 16-bit PNG whose rows use each of PNG's five filters in turn, as encoders choose them."""
    h, w, c = values.shape
    rows = values.astype(">u2").reshape(h, w * c).view(np.uint8).astype(int)
    bpp = 2 * c
    out = []
    for y, row in enumerate(rows):
        kind = y % 5
        up = rows[y - 1] if y else np.zeros_like(row)
        left = np.concatenate([np.zeros(bpp, int), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, int), up[:-bpp]])
        p = left + up - up_left
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        predictor = [0, left, up, (left + up) // 2, paeth][kind]
        out.append(bytes([kind]) + ((row - predictor) % 256).astype(np.uint8).tobytes())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"".join(out))) + chunk(b"IEND", b""))
    return path


def write_pages(path, planes):
    """A TIFF with one page per (H, W) plane."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        for plane in planes:
            tif.write(plane)
    return path


def as_network(values, scale):
    """(C, H, W) float32 in [-1, 1] of (H, W, C) values on a 0..scale range."""
    return torch.from_numpy(values.astype(np.float32).transpose(2, 0, 1) / scale * 2 - 1)


def crop_and_flip(values, sample_params):
    (x, y), flip = sample_params
    out = values[y:y + 16, x:x + 16]
    return out[:, ::-1] if flip else out


def params_of(dataset, index=0):
    spec = dataset.specs(index, lambda p: load_image(p).size)["A"]
    return spec.params.crop_pos, spec.params.flip


def translator_weights(tmp_path, input_nc, output_nc):
    path = tmp_path / "latest_net_G.pth"
    torch.save(to_original(define_G("resnet_6blocks", input_nc, output_nc, 4, "instance")), path)
    return path


def translate(weights, input, output, *extra):
    translate_main(["--checkpoint", str(weights), "--input", str(input), "--output", str(output), "--device", "cpu",
                    "--loader", "torch", "--no_progress", "--eval", *extra])


# ---- one channel ----

def test_one_channel_through_a_dataset_and_translate(tmp_path):
    rng = np.random.default_rng(0)
    pair = rng.integers(0, 256, (18, 48), dtype=np.uint8)
    (tmp_path / "train").mkdir()
    Image.fromarray(pair, "L").save(tmp_path / "train" / "0.png")
    sample = tiny_dataset(tmp_path, preprocess="crop", input_nc=1, output_nc=1)[0]
    assert sample["A"].shape == sample["B"].shape == (1, 16, 16)

    gray = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    (tmp_path / "inputs").mkdir()
    Image.fromarray(gray, "L").save(tmp_path / "inputs" / "x.png")
    translate(translator_weights(tmp_path, 1, 1), tmp_path / "inputs", tmp_path / "out", "--preprocess", "none")
    fake, real = (Image.open(tmp_path / "out" / "images" / f"x_{k}.png") for k in ("fake", "real"))
    assert fake.mode == real.mode == "L" and fake.size == real.size == (24, 20)
    # the original's truncating 8-bit round trip
    assert np.abs(np.asarray(real, int) - gray).max() <= 1
    assert "images/x_real.png" in (tmp_path / "out" / "index.html").read_text()


def test_sample_grids_show_any_channel_count():
    x = torch.linspace(-1, 1, 2 * 4 * 8 * 8).reshape(2, 4, 8, 8)
    grid = image_grid({"gray": x[:, :1], "rgb": x[:, :3], "two": x[:, :2], "four": x})
    assert grid.shape == (2 * 10 + 2, 4 * 10 + 2, 3)
    gray = grid[2:10, 2:10]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert (grid[2:10, 12:20] == grid[2:10, 32:40]).all()  # four channels: the first three, as RGB
    assert (grid[2:10, 22:30] == gray).all()  # two: the first, in gray


def test_a_video_through_a_one_channel_generator(tmp_path):
    av = pytest.importorskip("av", reason="video needs PyAV (the video extra)")

    with av.open(str(tmp_path / "clip.mp4"), "w") as clip:
        stream = clip.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for i in range(3):
            frame = np.full((32, 48, 3), 60 * i, np.uint8)
            clip.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        clip.mux(stream.encode(None))
    translate(translator_weights(tmp_path, 1, 1), tmp_path / "clip.mp4", tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as out:
        frames = [f.to_ndarray(format="rgb24") for f in out.decode(out.streams.video[0])]
    assert len(frames) == 3 and frames[0].shape == (32, 48, 3)
    with pytest.raises(UserError, match="video frames are gray or RGB, and this generator's images have 4"):
        translate(translator_weights(tmp_path, 4, 3), tmp_path / "clip.mp4", tmp_path / "out4.mp4")


# ---- 16 bits ----

@pytest.mark.parametrize("preprocess", ["crop", "resize_and_crop"])
@pytest.mark.parametrize("kind", ["png_gray", "png_graya", "png_rgb", "png_rgba", "tiff_gray",
                                  pytest.param("tiff_rgb", marks=needs_tifffile)])
def test_16_bit_steps_below_one_8_bit_level_survive_preprocessing(tmp_path, kind, preprocess):
    channels = {"gray": 1, "graya": 2, "rgb": 3, "rgba": 4}[kind.split("_")[1]]
    values = ramp16(24, 20, channels)
    path = tmp_path / ("x.png" if kind.startswith("png") else "x.tif")
    if kind == "png_gray":
        Image.fromarray(values[..., 0]).save(path)  # PIL's own 16-bit grayscale PNG
    elif kind.startswith("png"):
        write_png16_filtered(path, values)
    elif channels == 1:
        Image.fromarray(values[..., 0]).save(path)  # PIL's own 16-bit grayscale TIFF
    else:
        tifffile.imwrite(path, values, photometric="rgb")
    assert needs_float_path(path) == f"a 16-bit {path.suffix[1:].upper()}"
    nc = {2: 1, 4: 3}.get(channels, channels)  # alpha dropped
    ds = tiny_dataset(tmp_path, dataset_mode="single", preprocess=preprocess, input_nc=nc)
    a = ds[0]["A"]
    assert a.shape == (nc, 16, 16) and a.dtype == torch.float32
    if preprocess == "crop":
        np.testing.assert_allclose(a, as_network(crop_and_flip(values[..., :nc], params_of(ds)).copy(), 65535),
                                   atol=1e-6)
    else:  # resized from 24 x 20 to 20 x 20: the ramp's 3-level steps stay apart, far below 8 bits
        steps = torch.diff(a[0, 8]).abs()
        assert steps.min() > 0.5 * STEP_16 and steps.max() < 0.5 * LEVEL_8
        assert len(torch.unique(a[0, 8])) == 16


def test_16_bit_colour_read_as_gray_takes_pils_luma(tmp_path):
    values = ramp16(16, 16, 3)
    write_png16_filtered(tmp_path / "x.png", values)
    a = tiny_dataset(tmp_path, dataset_mode="single", preprocess="crop", crop_size=16, no_flip=True, input_nc=1)[0]["A"]
    luma = values.astype(np.float64) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(a[0], luma / 65535 * 2 - 1, atol=1e-5)


def test_the_translator_takes_16_bit_pil_images_at_full_precision(tmp_path):
    from pyi2i.translator import Translator

    gray = ramp16(24, 20, 1)[..., 0]
    translator = Translator.from_checkpoint(translator_weights(tmp_path, 1, 1), "cpu")
    np.testing.assert_allclose(translator.to_tensor_image(Image.fromarray(gray)), as_network(gray[..., None], 65535),
                               atol=1e-6)
    assert translator(Image.fromarray(gray)).size == (24, 20)


def test_write_png16_round_trip(tmp_path):
    for channels in (1, 2, 3, 4):
        values = np.random.default_rng(channels).integers(0, 65536, (7, 9, channels), dtype=np.uint16)
        with open(tmp_path / f"{channels}.png", "wb") as f:
            write_png16(values, f)
        image = load_image(tmp_path / f"{channels}.png")
        assert isinstance(image, FloatImage) and image.bits == 16
        np.testing.assert_array_equal(np.rint(image.pixels * 65535).astype(np.uint16), values)


def test_16_bit_inputs_give_16_bit_outputs(tmp_path):
    gray = ramp16(24, 20, 1)[..., 0]
    (tmp_path / "in").mkdir()
    Image.fromarray(gray).save(tmp_path / "in" / "gray.png")
    translate(translator_weights(tmp_path, 1, 1), tmp_path / "in", tmp_path / "out", "--preprocess", "none")
    for k in ("fake", "real"):
        assert Image.open(tmp_path / "out" / "images" / f"gray_{k}.png").mode == "I;16"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "images" / "gray_real.png")), gray)

    colour = ramp16(24, 20, 3)
    write_png16_filtered(tmp_path / "rgb" / "c.png", colour)
    translate(translator_weights(tmp_path, 3, 3), tmp_path / "rgb", tmp_path / "out_rgb", "--preprocess", "none")
    real = load_image(tmp_path / "out_rgb" / "images" / "c_real.png")
    np.testing.assert_array_equal(np.rint(real.pixels * 65535).astype(np.uint16), colour)
    assert load_image(tmp_path / "out_rgb" / "images" / "c_fake.png").bits == 16


# ---- other channel counts: .npy and multi-page TIFF ----

def test_four_channel_npy_aligned(tmp_path):
    pair = ramp16(48, 18, 4)  # A | B side by side, (H, W, C)
    (tmp_path / "train").mkdir()
    np.save(tmp_path / "train" / "0.npy", pair)
    assert make_dataset(tmp_path / "train") == [str(tmp_path / "train" / "0.npy")]
    ds = tiny_dataset(tmp_path, preprocess="crop", input_nc=4, output_nc=4)
    sample = ds[0]
    spec = ds.specs(0, lambda p: load_image(p).size)
    params = spec["A"].params.crop_pos, spec["A"].params.flip
    np.testing.assert_allclose(sample["A"], as_network(crop_and_flip(pair[:, :24], params).copy(), 65535), atol=1e-6)
    np.testing.assert_allclose(sample["B"], as_network(crop_and_flip(pair[:, 24:], params).copy(), 65535), atol=1e-6)
    assert tiny_dataset(tmp_path, input_nc=4, output_nc=4)[0]["A"].shape == (4, 16, 16)  # resized too


def test_four_channel_npy_unaligned_in_both_layouts_and_types(tmp_path):
    rng = np.random.default_rng(0)
    planes = rng.random((4, 20, 20), dtype=np.float32)  # (C, H, W) floats in [0, 1]
    bytes_last = rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)  # (H, W, C) uint8
    for side, array in (("A", planes), ("B", bytes_last)):
        (tmp_path / f"train{side}").mkdir()
        np.save(tmp_path / f"train{side}" / "x.npy", array)
    ds = tiny_dataset(tmp_path, dataset_mode="unaligned", preprocess="crop", no_flip=True, input_nc=4, output_nc=4)
    sample = ds[0]
    spec = ds.specs(0, lambda p: load_image(p).size)
    (ax, ay), (bx, by) = spec["A"].params.crop_pos, spec["B"].params.crop_pos
    np.testing.assert_allclose(sample["A"], planes[:, ay:ay + 16, ax:ax + 16] * 2 - 1, atol=1e-6)
    np.testing.assert_allclose(sample["B"], as_network(bytes_last[by:by + 16, bx:bx + 16], 255), atol=1e-6)


@needs_tifffile
def test_multi_page_tiff_pages_are_channels(tmp_path):
    values = ramp16(20, 20, 5)
    write_pages(tmp_path / "pages.tif", values.transpose(2, 0, 1))
    assert needs_float_path(tmp_path / "pages.tif") == "a 16-bit TIF"
    ds = tiny_dataset(tmp_path, dataset_mode="single", preprocess="crop", input_nc=5)
    np.testing.assert_allclose(ds[0]["A"], as_network(crop_and_flip(values, params_of(ds)).copy(), 65535), atol=1e-6)
    # one page of 8-bit planes, (C, H, W)
    (tmp_path / "planes").mkdir()
    tifffile.imwrite(tmp_path / "planes" / "p.tif", (values >> 8).astype(np.uint8).transpose(2, 0, 1),
                     planarconfig="separate", photometric="minisblack")
    image = load_image(tmp_path / "planes" / "p.tif")
    assert image.channels == 5 and image.bits == 8 and image.size == (20, 20)


def test_translate_writes_images_of_more_than_four_channels_as_arrays(tmp_path):
    planes = np.random.default_rng(0).random((5, 20, 24), dtype=np.float32)
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "x.npy", planes)
    translate(translator_weights(tmp_path, 5, 3), tmp_path / "in", tmp_path / "out", "--preprocess", "none")
    real = np.load(tmp_path / "out" / "images" / "x_real.npy")
    assert real.dtype == np.float32 and real.shape == (20, 24, 5)
    np.testing.assert_allclose(real, planes.transpose(1, 2, 0), atol=1e-6)
    fake = load_image(tmp_path / "out" / "images" / "x_fake.png")  # float input: a 16-bit PNG
    assert fake.bits == 16 and fake.channels == 3 and fake.size == (24, 20)
    index = (tmp_path / "out" / "index.html").read_text()
    assert "<a href='images/x_real.npy'>" in index and "<img src='images/x_fake.png'>" in index
    with pytest.raises(UserError, match="outputs of an earlier run .*x_fake.png"):
        translate(translator_weights(tmp_path, 5, 3), tmp_path / "in", tmp_path / "out")


def test_data_that_cannot_be_read_as_asked_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "train").mkdir()
    np.save(tmp_path / "train" / "wide.npy", np.full((18, 48), 1.5, np.float32))
    with pytest.raises(DataError, match=r"wide.npy holds float values from 1.5 to 1.5; float data must lie in \[0, 1"):
        tiny_dataset(tmp_path)[0]
    np.save(tmp_path / "train" / "wide.npy", np.zeros((18, 48), np.int32))
    with pytest.raises(DataError, match="wide.npy holds int32 values; store uint8"):
        tiny_dataset(tmp_path)[0]
    np.save(tmp_path / "train" / "wide.npy", np.zeros((18, 48, 5), np.uint8))
    with pytest.raises(DataError, match=r"wide.npy holds 5 channels, but it is read with 3 \(--input_nc / --output_nc\)"):
        tiny_dataset(tmp_path)[0]
    (tmp_path / "train" / "wide.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match="cannot read image .*wide.npy"):
        tiny_dataset(tmp_path)[0]


@needs_tifffile
def test_without_tifffile_a_multi_page_tiff_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    write_pages(tmp_path / "pages.tif", ramp16(20, 20, 2).transpose(2, 0, 1))
    monkeypatch.setitem(sys.modules, "tifffile", None)  # import tifffile raises ImportError
    with pytest.raises(DataError, match=r"pages.tif is a TIFF that PIL cannot read in full .*pyi2i\[tiff\]"):
        load_image(tmp_path / "pages.tif")


def test_eight_bit_rgba_read_with_four_channels(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    a = tiny_dataset(tmp_path, dataset_mode="single", preprocess="crop", crop_size=16, no_flip=True, input_nc=4)[0]["A"]
    np.testing.assert_allclose(a, as_network(rgba, 255), atol=1e-6)


# ---- DALI ----

def test_dali_refuses_what_it_would_decode_with_less_precision(tmp_path, monkeypatch, caplog):
    from pyi2i.data import dali

    if dali.unavailable_reason():
        pytest.skip(dali.unavailable_reason())
    cpu = torch.device("cpu")
    eight = tmp_path / "eight"
    (eight / "train").mkdir(parents=True)
    Image.fromarray(np.zeros((18, 48, 3), np.uint8)).save(eight / "train" / "0.png")
    dali.DaliLoader(tiny_dataset(eight), batch_size=1, shuffle=False, seed=0, device=cpu)
    with pytest.raises(dali.DaliCannotDecode, match="images of 1 or 3 channels, and side A is read with 4"):
        dali.DaliLoader(tiny_dataset(eight, input_nc=4), batch_size=1, shuffle=False, seed=0, device=cpu)
    kinds = {"deep.png": lambda p: Image.fromarray(ramp16(48, 18, 1)[..., 0]).save(p),
             "array.npy": lambda p: np.save(p, np.zeros((18, 48, 3), np.uint8))}
    if tifffile is not None:
        kinds["deep.tif"] = lambda p: tifffile.imwrite(p, ramp16(48, 18, 3), photometric="rgb")
        kinds["pages.tif"] = lambda p: write_pages(p, np.zeros((3, 18, 48), np.uint8))
    for name, save in kinds.items():
        root = tmp_path / name
        (root / "train").mkdir(parents=True)
        save(root / "train" / name)
        with pytest.raises(dali.DaliCannotDecode, match=f"DALI decodes 8-bit images, and .*{name} is a"):
            dali.DaliLoader(tiny_dataset(root), batch_size=1, shuffle=False, seed=0, device=cpu)

    # translate: --loader auto reads such data with the torch loader, --loader dali says why not
    import pyi2i.translate

    monkeypatch.setattr(pyi2i.translate, "resolve_loader", lambda name, device: "dali")
    weights = translator_weights(tmp_path, 1, 1)
    (tmp_path / "in").mkdir()
    Image.fromarray(ramp16(24, 20, 1)[..., 0]).save(tmp_path / "in" / "x.png")
    with caplog.at_level(logging.WARNING, logger="pyi2i"):
        translate(weights, tmp_path / "in", tmp_path / "out", "--loader", "auto")
    assert "is a 16-bit PNG" in caplog.text and "reading with the torch loader" in caplog.text
    assert Image.open(tmp_path / "out" / "images" / "x_fake.png").mode == "I;16"
    with pytest.raises(dali.DaliUnavailable, match="--loader dali: DALI decodes 8-bit images.*use --loader torch"):
        translate(weights, tmp_path / "in", tmp_path / "out2", "--loader", "dali")


def test_training_falls_back_from_dali_on_16_bit_data(tmp_path, monkeypatch, caplog):
    from pyi2i.data import dali
    from pyi2i.engine import batches
    from pyi2i.engine.trainer import Trainer

    if dali.unavailable_reason():
        pytest.skip(dali.unavailable_reason())
    for side in "AB":
        (tmp_path / "data" / f"train{side}").mkdir(parents=True)
        Image.fromarray(ramp16(36, 36, 1)[..., 0]).save(tmp_path / "data" / f"train{side}" / "x.png")
    monkeypatch.setattr(batches, "resolve_loader", lambda name, device: "dali")  # as on a GPU with DALI
    with caplog.at_level(logging.WARNING, logger="pyi2i"):
        trainer = Trainer(training_options(tmp_path / "data", checkpoints_dir=tmp_path, loader="auto"))
    assert trainer.batches.dali is None and "x.png is a 16-bit PNG" in caplog.text
    with pytest.raises(dali.DaliUnavailable, match="--loader dali: .*x.png is a 16-bit PNG.*use --loader torch"):
        Trainer(training_options(tmp_path / "data", checkpoints_dir=tmp_path, loader="dali", name="other"))
