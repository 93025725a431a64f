import gc
import logging
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_dataset
from pyi2i.data import DataError, create_loader, epoch_order, make_dataset
from pyi2i.data.images import load_rgb, to_tensor


@pytest.fixture(autouse=True)
def seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def gradient(w, h, channels=3, offset=0):
    """An image in which every crop position and flip gives a different picture."""
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(xx * 7 + yy * 3 + offset + 40 * c) % 256 for c in range(channels)]
    return np.stack(planes, -1).astype(np.uint8)


def save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def aligned_root(tmp_path, n=3, w=24, h=18, same_halves=True):
    for i in range(n):
        a = gradient(w, h, offset=i)
        b = a if same_halves else 255 - a
        save(tmp_path / "train" / f"{i}.png", np.concatenate([a, b], 1))
    return tmp_path


def unaligned_root(tmp_path, n_a=3, n_b=5, size=20):
    for side, n in (("A", n_a), ("B", n_b)):
        for i in range(n):
            save(tmp_path / f"train{side}" / f"{side}{i}.png", gradient(size, size, offset=i))
    return tmp_path


# ---- preprocess modes ----

@pytest.mark.parametrize("preprocess, size, expected_hw", [
    ("resize_and_crop", (23, 17), (16, 16)),
    ("crop", (23, 17), (16, 16)),
    ("scale_width", (23, 17), (16, 20)),                       # height int(max(20 * 17 / 23, 16))
    ("scale_width", (10, 30), (60, 20)),
    ("scale_width", (20, 25), (25, 20)),                       # width already load_size: untouched
    ("scale_width_and_crop", (23, 17), (16, 16)),
    ("scale_width_and_crop", (10, 30), (16, 16)),
    ("none", (23, 17), (16, 24)),                              # round(17 / 4) * 4, round(23 / 4) * 4
    ("none", (1, 1), (4, 4)),
])
def test_preprocess_output_size(tmp_path, preprocess, size, expected_hw):
    save(tmp_path / "img.png", gradient(*size))
    ds = tiny_dataset(tmp_path, dataset_mode="single", preprocess=preprocess)
    assert ds[0]["A"].shape == (3, *expected_hw)


def test_tensor_range_and_dtype():
    img = Image.fromarray(np.array([[[0, 128, 255]]], np.uint8))
    t = to_tensor(img)
    assert t.dtype == torch.float32 and t.shape == (3, 1, 1) and t.is_contiguous()
    # Bit-exact with the original's ToTensor() then Normalize(0.5, 0.5), both in float32.
    assert torch.equal(t.flatten(), (torch.tensor([0.0, 128.0, 255.0]) / 255 - 0.5) / 0.5)
    assert t.min() == -1 and t.max() == 1


def test_resize_is_pil_bicubic(tmp_path):
    pixels = gradient(30, 26)
    save(tmp_path / "img.png", pixels)
    out = tiny_dataset(tmp_path, dataset_mode="single", preprocess="resize_and_crop",
                                  load_size=16, crop_size=16, no_flip=True)[0]["A"]
    expected = to_tensor(Image.fromarray(pixels).resize((16, 16), Image.BICUBIC))
    assert torch.equal(out, expected)


def test_crop_smaller_than_crop_size_names_file_and_fix(tmp_path):
    path = save(tmp_path / "small.png", gradient(12, 30))
    ds = tiny_dataset(tmp_path, dataset_mode="single", preprocess="crop")
    with pytest.raises(DataError, match="crop_size") as err:
        ds[0]
    assert str(path) in str(err.value) and "12x30" in str(err.value) and "resize_and_crop" in str(err.value)


def test_load_size_below_crop_size_is_refused_before_loading(tmp_path):
    aligned_root(tmp_path)
    with pytest.raises(DataError, match="load_size"):
        tiny_dataset(tmp_path, load_size=12, crop_size=16)


def test_unknown_modes_are_refused(tmp_path):
    aligned_root(tmp_path)
    for bad in (dict(preprocess="zoom"), dict(dataset_mode="paired"), dict(direction="AB")):
        with pytest.raises(ValueError):
            tiny_dataset(tmp_path, **bad)


# ---- aligned ----

@pytest.mark.parametrize("preprocess", ["resize_and_crop", "crop", "scale_width_and_crop", "none"])
def test_aligned_halves_share_crop_and_flip(tmp_path, preprocess):
    ds = tiny_dataset(aligned_root(tmp_path, n=4), preprocess=preprocess)
    unflipped = tiny_dataset(tmp_path, preprocess=preprocess, no_flip=True)
    flipped = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        unflipped.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            assert torch.equal(s["A"], s["B"])
            flipped.append(torch.equal(s["A"], unflipped[i]["A"].flip(-1)))
    assert any(flipped) and not all(flipped)
    assert s["A_paths"] == s["B_paths"] == str(tmp_path / "train" / "3.png")


def test_aligned_split_and_direction(tmp_path):
    aligned_root(tmp_path, n=1, w=24, h=18, same_halves=False)
    pixels = np.asarray(Image.open(tmp_path / "train" / "0.png"))
    # 'none' rounds 18 / 4 = 4.5 half to even, as Python's round() does in the original: height 16.
    left, right = (to_tensor(Image.fromarray(half).resize((24, 16), Image.BICUBIC))
                   for half in (pixels[:, :24], pixels[:, 24:]))
    ab = tiny_dataset(tmp_path, preprocess="none")[0]
    ba = tiny_dataset(tmp_path, preprocess="none", direction="BtoA")[0]
    flipped = torch.equal(ab["A"], left.flip(-1))
    if flipped:
        left, right = left.flip(-1), right.flip(-1)
    assert torch.equal(ab["A"], left) and torch.equal(ab["B"], right)
    assert torch.equal(ba["A"], right) and torch.equal(ba["B"], left)


def test_aligned_odd_width_splits_at_half(tmp_path):
    save(tmp_path / "train" / "odd.png", gradient(33, 17))
    s = tiny_dataset(tmp_path, preprocess="crop", crop_size=16)[0]
    assert s["A"].shape == s["B"].shape == (3, 16, 16)


def test_grayscale_sides_follow_direction(tmp_path):
    aligned_root(tmp_path, n=1)
    s = tiny_dataset(tmp_path, input_nc=1, output_nc=3)[0]
    assert s["A"].shape[0] == 1 and s["B"].shape[0] == 3
    s = tiny_dataset(tmp_path, direction="BtoA", input_nc=1, output_nc=3)[0]
    assert s["A"].shape[0] == 1 and s["B"].shape[0] == 3


# ---- unaligned ----

def test_unaligned_serial_batches_pairs_by_index(tmp_path):
    ds = tiny_dataset(unaligned_root(tmp_path), dataset_mode="unaligned", serial_batches=True)
    assert len(ds) == 5
    names = [(s["A_paths"].rsplit("/", 1)[1], s["B_paths"].rsplit("/", 1)[1]) for s in ds]
    assert names == [("A0.png", "B0.png"), ("A1.png", "B1.png"), ("A2.png", "B2.png"),
                     ("A0.png", "B3.png"), ("A1.png", "B4.png")]


def test_unaligned_random_b_is_seeded(tmp_path):
    root = unaligned_root(tmp_path, n_a=2, n_b=40)
    ds = tiny_dataset(root, dataset_mode="unaligned")
    first = [s["B_paths"] for s in ds]
    assert first == [s["B_paths"] for s in tiny_dataset(root, dataset_mode="unaligned")]
    assert len(set(first)) > 10 and first != sorted(first)
    assert [ds[i]["A_paths"].rsplit("/", 1)[1] for i in range(4)] == ["A0.png", "A1.png", "A0.png", "A1.png"]


def test_unaligned_direction_swaps_folders(tmp_path):
    root = unaligned_root(tmp_path)
    s = tiny_dataset(root, dataset_mode="unaligned", direction="BtoA", serial_batches=True)[0]
    assert "/trainB/" in s["A_paths"] and "/trainA/" in s["B_paths"]


def test_unaligned_sides_get_independent_params(tmp_path):
    for i in range(6):
        save(tmp_path / "trainA" / f"{i}.png", gradient(20, 20))
        save(tmp_path / "trainB" / f"{i}.png", gradient(20, 20))
    ds = tiny_dataset(tmp_path, dataset_mode="unaligned")
    assert any(not torch.equal(s["A"], s["B"]) for s in ds)


def test_max_dataset_size(tmp_path):
    aligned_root(tmp_path, n=5)
    ds = tiny_dataset(tmp_path, max_dataset_size=2)
    assert [p.rsplit("/", 1)[1] for p in ds.paths] == ["0.png", "1.png"]
    root = unaligned_root(tmp_path / "u", n_a=4, n_b=6)
    assert len(tiny_dataset(root, dataset_mode="unaligned", max_dataset_size=3)) == 3


def test_make_dataset_walks_recursively_and_filters(tmp_path):
    for name in ("b.PNG", "a.jpg", "sub/c.JpEg", "sub/deeper/d.webp", "notes.txt", "e.png.bak"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p[len(str(tmp_path)) + 1:] for p in make_dataset(tmp_path)]
    assert found == ["a.jpg", "b.PNG", "sub/c.JpEg", "sub/deeper/d.webp"]


# ---- image modes ----

def _modes():
    rgb = gradient(9, 7)
    gray = rgb[..., 0]
    yield "L", Image.fromarray(gray, "L"), gray
    yield "LA", Image.fromarray(np.stack([gray, 255 - gray], -1), "LA"), gray
    yield "1", Image.fromarray(gray > 127), np.where(gray > 127, 255, 0)
    yield "RGBA", Image.fromarray(np.concatenate([rgb, np.zeros_like(gray)[..., None]], -1), "RGBA"), rgb
    palette = Image.fromarray(rgb).quantize(16)
    yield "P", palette, np.asarray(palette.convert("RGB"))
    yield "I;16", Image.fromarray((gray.astype(np.uint16) * 257)), gray
    yield "F", Image.fromarray(gray.astype(np.float32) / 255), gray


@pytest.mark.parametrize("mode", [m for m, _, _ in _modes()])
def test_image_modes_convert_to_rgb(tmp_path, mode):
    _, img, expected = next(x for x in _modes() if x[0] == mode)
    path = tmp_path / ("img.tif" if mode == "F" else "img.png")
    img.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode.startswith(mode)
    rgb = load_rgb(path)
    expected = np.asarray(expected, np.uint8)
    if expected.ndim == 2:
        expected = np.repeat(expected[..., None], 3, -1)
    assert rgb.mode == "RGB" and rgb.size == (9, 7)
    np.testing.assert_array_equal(np.asarray(rgb), expected)


def test_sixteen_bit_full_range(tmp_path):
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16)).save(tmp_path / "deep.png")
    assert np.asarray(load_rgb(tmp_path / "deep.png"))[0, :, 0].tolist() == [0, 100, 255]


def test_odd_sized_grayscale_through_dataset(tmp_path):
    Image.fromarray(gradient(13, 11)[..., 0], "L").save(tmp_path / "g.png")
    s = tiny_dataset(tmp_path, dataset_mode="single", preprocess="none", output_nc=1)[0]
    assert s["A"].shape == (3, 12, 12)
    s = tiny_dataset(tmp_path, dataset_mode="single", preprocess="none", input_nc=1)[0]
    assert s["A"].shape == (1, 12, 12)


# ---- bad data ----

def write_corrupt(tmp_path):
    good = save(tmp_path / "train" / "good.png", np.concatenate([gradient(20, 20)] * 2, 1))
    data = good.read_bytes()
    truncated = tmp_path / "train" / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "train" / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    return truncated, garbage


def test_corrupt_file_raises_data_error_naming_it(tmp_path):
    truncated, garbage = write_corrupt(tmp_path)
    ds = tiny_dataset(tmp_path)
    for path in (truncated, garbage):
        with pytest.raises(DataError, match="skip_bad_images") as err:
            ds[ds.paths.index(str(path))]
        assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_skip_bad_images(tmp_path, caplog):
    truncated, garbage = write_corrupt(tmp_path)
    with caplog.at_level(logging.WARNING, logger="pyi2i.data"):
        ds = tiny_dataset(tmp_path, skip_bad_images=True)
    assert len(ds) == 1 and ds.paths[0].endswith("good.png")
    assert sorted(p for p, _ in ds.skipped) == sorted([str(garbage), str(truncated)])
    assert all(reason for _, reason in ds.skipped)
    assert "skipping 2 unreadable" in caplog.text
    ds[0]


def test_all_files_bad_is_an_empty_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "x.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="no readable images"):
        tiny_dataset(tmp_path, skip_bad_images=True)


@pytest.mark.parametrize("mode, expected", [
    ("aligned", "expected train/ under DATAROOT"),
    ("unaligned", "expected trainA/ and trainB/ under DATAROOT for --dataset_mode unaligned"),
    ("single", "expected images in DATAROOT"),
])
def test_missing_and_empty_folders(tmp_path, mode, expected):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="not found") as err:
        tiny_dataset(missing, dataset_mode=mode)
    assert expected in str(err.value)
    for sub in ("train", "trainA", "trainB"):
        (tmp_path / sub).mkdir()
    (tmp_path / "train" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no readable images") as err:
        tiny_dataset(tmp_path / "train" if mode == "single" else tmp_path, dataset_mode=mode)
    assert expected in str(err.value)


def test_missing_unaligned_half_names_it(tmp_path):
    unaligned_root(tmp_path)
    for f in (tmp_path / "trainB").iterdir():
        f.unlink()
    (tmp_path / "trainB").rmdir()
    with pytest.raises(DataError) as err:
        tiny_dataset(tmp_path, dataset_mode="unaligned")
    assert str(tmp_path / "trainB") in str(err.value) and "trainA/" in str(err.value)


# ---- determinism ----

def test_samples_depend_only_on_seed_epoch_index(tmp_path):
    first, second = tiny_dataset(aligned_root(tmp_path, n=4)), tiny_dataset(tmp_path)
    for ds in (first, second):
        ds.set_epoch(3)
    assert all(torch.equal(first[i]["A"], second[i]["A"]) for i in range(4))
    assert torch.equal(first[2]["A"], first[2]["A"])
    before = [first[i]["A"] for i in range(4)]
    first.set_epoch(4)
    assert any(not torch.equal(a, first[i]["A"]) for i, a in enumerate(before))
    other_seed = tiny_dataset(tmp_path, seed=1)
    other_seed.set_epoch(3)
    assert any(not torch.equal(a, other_seed[i]["A"]) for i, a in enumerate(before))


# ---- loader ----

@pytest.mark.parametrize("shuffle", [False, True])
def test_epoch_order_is_a_permutation(shuffle):
    order = epoch_order(11, seed=0, epoch=0, shuffle=shuffle)
    assert sorted(order) == list(range(11))
    assert (order == list(range(11))) != shuffle
    assert order == epoch_order(11, seed=0, epoch=0, shuffle=shuffle)
    if shuffle:
        assert order != epoch_order(11, seed=0, epoch=1, shuffle=True)
        assert order != epoch_order(11, seed=1, epoch=0, shuffle=True)


@pytest.mark.parametrize("n, world_size", [(12, 3), (10, 4), (2, 3)])
def test_epoch_order_shards(n, world_size):
    full = epoch_order(n, seed=5, epoch=2, shuffle=True)
    shards = [epoch_order(n, seed=5, epoch=2, shuffle=True, rank=r, world_size=world_size) for r in range(world_size)]
    per_rank = -(-n // world_size)
    assert all(len(s) == per_rank for s in shards)
    assert sorted(set().union(*shards)) == list(range(n))
    padded = full + (full * world_size)[: per_rank * world_size - n]
    assert [i for s in zip(*shards) for i in s] == padded
    if n % world_size == 0:
        assert sum(len(s) for s in shards) == len(set().union(*shards))
    with pytest.raises(ValueError):
        epoch_order(n, 0, 0, True, rank=world_size, world_size=world_size)


def batch_paths(loader):
    return [list(batch["A_paths"]) for batch in loader]


def test_create_loader_start_batch_resumes_the_epoch(tmp_path):
    ds = tiny_dataset(aligned_root(tmp_path, n=7))
    kw = dict(batch_size=2, shuffle=True, num_workers=0, seed=3, epoch=5)
    full = list(create_loader(ds, **kw))
    assert [len(b["A_paths"]) for b in full] == [2, 2, 2, 1]
    ds.set_epoch(0)
    tail = list(create_loader(ds, start_batch=2, **kw))
    assert len(tail) == 2
    for got, want in zip(tail, full[2:]):
        assert got["A_paths"] == want["A_paths"] and torch.equal(got["A"], want["A"])
    assert sorted(p for b in full for p in b["A_paths"]) == sorted(ds.paths)


def test_create_loader_leaves_global_rng_alone(tmp_path):
    ds = tiny_dataset(aligned_root(tmp_path, n=2))
    state = torch.get_rng_state()
    list(create_loader(ds, batch_size=1, shuffle=True, num_workers=0, seed=0, epoch=0))
    assert torch.equal(state, torch.get_rng_state())


def test_create_loader_same_batches_with_workers(tmp_path):
    ds = tiny_dataset(aligned_root(tmp_path, n=4))
    kw = dict(batch_size=2, shuffle=True, seed=1, epoch=2, rank=1, world_size=2)
    serial = list(create_loader(ds, num_workers=0, **kw))
    ds.set_epoch(0)  # the loader must set it again for its workers
    parallel = list(create_loader(ds, num_workers=2, **kw))
    assert len(serial) == len(parallel) == 1
    assert serial[0]["A_paths"] == parallel[0]["A_paths"]
    assert torch.equal(serial[0]["A"], parallel[0]["A"]) and torch.equal(serial[0]["B"], parallel[0]["B"])


class _Finalised:
    """Garbage in a reference cycle that records, in `log`, the PID of the process finalising it."""

    def __init__(self, log):
        self.log, self.cycle = log, self

    def __del__(self):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")


class _CollectingDataset(torch.utils.data.Dataset):
    """Each sample runs a garbage collection in the worker, as any allocation-heavy sample may."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        gc.collect()
        return torch.tensor(i)


def test_workers_never_finalise_the_training_process_garbage(tmp_path):
    # A DALI pipeline left from an earlier loader hung a worker that finalised it this way.
    log = tmp_path / "finalised"
    gc.disable()  # keep the cycle uncollected in this process until the workers have forked
    try:
        _Finalised(log)
        batches = list(create_loader(_CollectingDataset(), batch_size=1, shuffle=False, num_workers=1, seed=0, epoch=0))
        assert [int(b) for b in batches] == [0, 1]
        assert not log.exists() or log.read_text().split() == [str(os.getpid())]
    finally:
        gc.enable()
    gc.collect()  # this process finalises its own garbage as usual
    assert log.read_text().split() == [str(os.getpid())]
