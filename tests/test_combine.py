"""python -m pyi2i.datasets combine_A_and_B: the original release's pairing of two folders into A|B images."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pyi2i.cli import run_cli
from pyi2i.data.combine import combine_A_and_B
from pyi2i.datasets import main as datasets_main
from pyi2i.errors import UserError


def write_image(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def random_rgb(rng, height=6, width=5):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def pixels(path):
    return np.asarray(Image.open(path))


@pytest.fixture
def folders(tmp_path):
    """fold_A and fold_B with train/ and test/ splits of paired PNGs, and the pixels of each."""
    rng = np.random.default_rng(0)
    images = {}
    for split, names in (("train", ["0001.png", "0002.png", "0003.png"]), ("test", ["x.png"])):
        for name in names:
            images[split, name] = tuple(write_image(tmp_path / side / split / name, random_rgb(rng)) for side in "AB")
    return tmp_path, images


def combine_cli(*args):
    return run_cli(lambda: datasets_main(["combine_A_and_B", *map(str, args)]))


@pytest.mark.parametrize("multiprocessing", [True, False])
def test_pairs_by_name_side_by_side(folders, multiprocessing):
    root, images = folders
    extra = [] if multiprocessing else ["--no_multiprocessing"]
    assert combine_cli("--fold_A", root / "A", "--fold_B", root / "B", "--fold_AB", root / "AB", *extra) == 0
    written = sorted(p.relative_to(root / "AB").as_posix() for p in (root / "AB").rglob("*") if p.is_file())
    assert written == ["test/x.png", "train/0001.png", "train/0002.png", "train/0003.png"]
    for (split, name), (a, b) in images.items():
        assert np.array_equal(pixels(root / "AB" / split / name), np.concatenate([a, b], axis=1))


def test_num_imgs_caps_each_split_in_name_order(folders):
    root, _ = folders
    reports = combine_A_and_B(root / "A", root / "B", root / "AB", num_imgs=2, processes=1)
    assert {r.split: r.written for r in reports} == {"test": 1, "train": 2}
    assert sorted(p.name for p in (root / "AB" / "train").iterdir()) == ["0001.png", "0002.png"]


def test_use_AB_naming(tmp_path):
    rng = np.random.default_rng(1)
    for path in ("A/train/0001_A.jpg", "B/train/0001_B.jpg", "A/train/other.jpg"):  # other: no _A, not a candidate
        write_image(tmp_path / path, random_rgb(rng, 16, 16))
    reports = combine_A_and_B(tmp_path / "A", tmp_path / "B", tmp_path / "AB", use_AB=True, processes=1)
    assert [p.name for p in (tmp_path / "AB" / "train").iterdir()] == ["0001.jpg"]
    assert reports[0].without_partner == []
    ab = Image.open(tmp_path / "AB" / "train" / "0001.jpg")
    assert ab.size == (32, 16)
    # Written at the JPEG quality the original's cv2.imwrite uses (95), not PIL's default (75).
    Image.new("RGB", (8, 8)).save(tmp_path / "q95.jpg", quality=95)
    assert ab.quantization == Image.open(tmp_path / "q95.jpg").quantization


def test_grayscale_and_16_bit_pairs_keep_their_mode(tmp_path):
    rng = np.random.default_rng(2)
    a = write_image(tmp_path / "A" / "train" / "s.png", rng.integers(0, 65536, (4, 3), dtype=np.uint16))
    b = write_image(tmp_path / "B" / "train" / "s.png", rng.integers(0, 65536, (4, 3), dtype=np.uint16))
    combine_A_and_B(tmp_path / "A", tmp_path / "B", tmp_path / "AB", processes=1)
    ab = Image.open(tmp_path / "AB" / "train" / "s.png")
    assert ab.mode.startswith("I") and np.array_equal(np.asarray(ab), np.concatenate([a, b], axis=1))


def test_npy_arrays_of_any_channel_count_stand_side_by_side(tmp_path):
    """Arrays as the datasets read them: (H, W, C), or (C, H, W) turned so; the aligned loader then
    cuts the combined array at half its width."""
    rng = np.random.default_rng(3)
    a = rng.random((5, 8, 10)).astype(np.float32)  # (C, H, W): five channels
    b = rng.random((8, 10, 5)).astype(np.float32)  # (H, W, C)
    for folder, array in (("A", a), ("B", b)):
        (tmp_path / folder / "train").mkdir(parents=True)
        np.save(tmp_path / folder / "train" / "s.npy", array)
    combine_A_and_B(tmp_path / "A", tmp_path / "B", tmp_path / "AB", processes=1)
    ab = np.load(tmp_path / "AB" / "train" / "s.npy")
    assert ab.shape == (8, 20, 5)
    assert np.array_equal(ab[:, :10], a.transpose(1, 2, 0)) and np.array_equal(ab[:, 10:], b)
    np.save(tmp_path / "B" / "train" / "s.npy", b.astype(np.float64))
    with pytest.raises(UserError, match=r"s.npy is float32 \(8, 10, 5\) but .*s.npy is float64 \(8, 10, 5\)"):
        combine_A_and_B(tmp_path / "A", tmp_path / "B", tmp_path / "AB2", processes=1)


def test_mixed_modes_become_rgb(tmp_path):
    gray = write_image(tmp_path / "A" / "train" / "m.png", np.full((4, 4), 77, np.uint8))
    write_image(tmp_path / "B" / "train" / "m.png", np.zeros((4, 4, 3), np.uint8))
    combine_A_and_B(tmp_path / "A", tmp_path / "B", tmp_path / "AB", processes=1)
    ab = pixels(tmp_path / "AB" / "train" / "m.png")
    assert ab.shape == (4, 8, 3) and (ab[:, :4] == gray[..., None]).all() and (ab[:, 4:] == 0).all()


@pytest.mark.parametrize("multiprocessing", [True, False])
def test_size_mismatch_is_a_clear_error_after_the_good_pairs(folders, caplog, multiprocessing):
    root, _ = folders
    write_image(root / "B" / "train" / "0002.png", np.zeros((7, 5, 3), np.uint8))
    extra = [] if multiprocessing else ["--no_multiprocessing"]
    assert combine_cli("--fold_A", root / "A", "--fold_B", root / "B", "--fold_AB", root / "AB", *extra) == 1
    message = caplog.records[-1].getMessage()
    assert "1 pairs could not be combined" in message and "0002.png is 5x6 but" in message
    assert "same height" in message
    assert sorted(p.name for p in (root / "AB" / "train").iterdir()) == ["0001.png", "0003.png"]


def test_missing_partners_and_splits_are_reported(folders, caplog):
    root, _ = folders
    (root / "B" / "train" / "0003.png").unlink()
    (root / "A" / "val").mkdir()
    reports = combine_A_and_B(root / "A", root / "B", root / "AB", processes=1)
    assert {r.split: r.without_partner for r in reports} == {"test": [], "train": ["0003.png"]}
    log = caplog.text
    assert "val has no counterpart" in log and "1 images in" in log and "0003.png" in log


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("no common split", "no split folder is in both"),
    ("output is input", "is an input folder"),
])
def test_bad_folders_exit_1_with_the_fix(folders, caplog, case, message):
    root, _ = folders
    fold_A, fold_AB = root / "A", root / "AB"
    if case == "missing":
        fold_A = root / "nowhere"
    elif case == "no common split":
        for split in ("train", "test"):
            (root / "B" / split).rename(root / "B" / f"{split}B")
    else:
        fold_AB = root / "B"
    before = {p: p.read_bytes() for p in root.rglob("*.png")}
    assert combine_cli("--fold_A", fold_A, "--fold_B", root / "B", "--fold_AB", fold_AB) == 1
    assert message in caplog.records[-1].getMessage()
    assert {p: p.read_bytes() for p in root.rglob("*.png")} == before


def test_command_line(folders):
    root, _ = folders
    r = subprocess.run([sys.executable, "-m", "pyi2i.datasets", "combine_A_and_B", "--fold_A", str(root / "A"),
                        "--fold_B", str(root / "B"), "--fold_AB", str(root / "AB"), "--num_imgs", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote 2 A|B images" in r.stdout and "split = train, use 1/3 pairs" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pyi2i.datasets", "combine_A_and_B", "--fold_A", str(root / "nowhere"),
                        "--fold_B", str(root / "B"), "--fold_AB", str(root / "AB")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("error: --fold_A") and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "pyi2i.datasets", "combine_A_and_B", "--fold", "x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
