"""python -m pyi2i.translate: batches, names kept per input folder, no overwrites, any size."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pyi2i.errors import UserError
from pyi2i.models import define_G
from pyi2i.models.original_format import to_original
from pyi2i.translate import main


@pytest.fixture
def weights(tmp_path):
    torch.save(to_original(define_G("resnet_6blocks", 3, 3, 4, "instance")), tmp_path / "latest_net_G_A.pth")
    return tmp_path / "latest_net_G_A.pth"


@pytest.fixture
def tree(tmp_path):
    """x.png in two folders, and images of several sizes (odd ones too) in a third."""
    rng = np.random.default_rng(0)
    root = tmp_path / "in"
    for rel, (h, w) in {"a/x.png": (20, 24), "b/x.png": (20, 24), "c/y.png": (17, 31), "c/z.jpg": (20, 24),
                        "c/deeper/w.png": (33, 9)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / rel)
    return root


def _run(weights, tree, out, *extra):
    main(["--checkpoint", str(weights), "--input", str(tree), "--output", str(out), "--preprocess", "none",
          "--device", "cpu", "--loader", "torch", "--no_progress", "--eval", *extra])


def _outputs(out):
    return {p.relative_to(out).as_posix(): np.asarray(Image.open(p)) for p in sorted(out.rglob("*.png"))}


def test_same_stems_in_different_folders_keep_apart_and_batches_change_nothing(weights, tree, tmp_path):
    _run(weights, tree, tmp_path / "one", "--batch_size", "1", "--workers", "1")
    _run(weights, tree, tmp_path / "three", "--batch_size", "3", "--workers", "2")
    # three 20x24 images one at a time: two warm-up calls, then a captured graph's replay
    _run(weights, tree, tmp_path / "graphs", "--batch_size", "1", "--workers", "1", "--cuda-graphs")
    one, three = _outputs(tmp_path / "one"), _outputs(tmp_path / "three")
    assert _outputs(tmp_path / "graphs").keys() == one.keys()
    for name, image in _outputs(tmp_path / "graphs").items():
        assert np.array_equal(image, one[name]), name
    assert sorted(one) == sorted(f"images/{s}_{k}.png" for s in ("a/x", "b/x", "c/y", "c/z", "c/deeper/w")
                                 for k in ("fake", "real"))
    for name, image in one.items():
        assert np.array_equal(image, three[name]), name
    assert not np.array_equal(one["images/a/x_fake.png"], one["images/b/x_fake.png"])
    assert one["images/c/deeper/w_fake.png"].shape == (33, 9, 3)  # each image at its own size
    real = np.asarray(Image.open(tree / "c" / "y.png"), dtype=int)  # the original's truncating 8-bit round trip
    assert np.abs(one["images/c/y_real.png"] - real).max() <= 1
    page = (tmp_path / "one" / "index.html").read_text()
    assert page.count("<tr>") == 6 and "images/c/deeper/w_fake.png" in page


def test_outputs_of_an_earlier_run_are_kept_unless_overwrite(weights, tree, tmp_path):
    out = tmp_path / "out"
    _run(weights, tree, out)
    (out / "images" / "a" / "x_fake.png").write_bytes(b"mine")
    with pytest.raises(UserError, match=r"10 outputs of an earlier run are in .*pass --overwrite"):
        _run(weights, tree, out)
    assert (out / "images" / "a" / "x_fake.png").read_bytes() == b"mine"
    _run(weights, tree, out, "--overwrite")
    assert Image.open(out / "images" / "a" / "x_fake.png").size == (24, 20)


def test_two_inputs_that_would_share_a_name_are_refused(weights, tree, tmp_path):
    Image.new("RGB", (8, 8)).save(tree / "a" / "x.jpg")
    with pytest.raises(UserError, match="2 inputs would all be written as images/a/x_fake.png"):
        _run(weights, tree, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_command_line_gives_one_line_for_a_refused_overwrite(weights, tree, tmp_path):
    args = [sys.executable, "-m", "pyi2i.translate", "--checkpoint", str(weights), "--input", str(tree / "a"),
            "--output", str(tmp_path / "out"), "--preprocess", "none", "--device", "cpu", "--loader", "torch"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "img/s" in first.stderr  # the progress bar
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
