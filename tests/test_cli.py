"""The command-line entry points, run as a user runs them."""

import subprocess
import sys

import pytest
import torch
from PIL import Image

from pyi2i.models import define_G
from pyi2i.models.original_format import to_original

SMALL = ["--ngf", "4", "--ndf", "4", "--num_threads", "0", "--no_progress", "--max_steps", "2"]


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("arch, data, extra", [
    ("cyclegan", "unpaired", ["--netG", "resnet_6blocks", "--load_size", "36", "--crop_size", "32"]),
    ("pix2pix", "paired", ["--netG", "unet_128", "--load_size", "128", "--crop_size", "128", "--direction", "BtoA"]),
])
def test_train_then_translate(demo_root, tmp_path, arch, data, extra):
    r = run("pyi2i.train", "--arch", arch, "--dataroot", str(demo_root / data), "--checkpoints_dir", str(tmp_path),
            "--name", "r", *SMALL, *extra)
    assert r.returncode == 0, r.stderr
    assert "reached --max_steps 2" in r.stderr
    images = demo_root / "unpaired" / "testA"
    for checkpoint in ("latest.pt", "latest_net_G.pth" if arch == "pix2pix" else "latest_net_G_A.pth"):
        out = tmp_path / f"out_{checkpoint}"
        r = run("pyi2i.translate", "--checkpoint", str(tmp_path / "r" / checkpoint), "--input", str(images),
                "--output", str(out), "--load_size", "128", "--crop_size", "128", "--eval")
        assert r.returncode == 0, r.stderr
        fakes = sorted((out / "images").glob("*_fake.png"))
        assert len(fakes) == 4 and Image.open(fakes[0]).size == (128, 128)
        page = (out / "index.html").read_text()
        assert page.count("<tr>") == 5 and "_fake.png" in page


def test_translate_an_original_release_file_at_native_size(demo_root, tmp_path):
    G = define_G("resnet_9blocks", 3, 3, 4, "instance")
    torch.save(to_original(G), tmp_path / "latest_net_G_A.pth")
    r = run("pyi2i.translate", "--checkpoint", str(tmp_path / "latest_net_G_A.pth"), "--input",
            str(demo_root / "unpaired" / "testB"), "--output", str(tmp_path / "out"), "--preprocess", "none",
            "--num_test", "2")
    assert r.returncode == 0, r.stderr
    assert "resnet_9blocks" in r.stderr
    fakes = sorted((tmp_path / "out" / "images").glob("*_fake.png"))
    assert len(fakes) == 2 and Image.open(fakes[0]).size == (32, 32)
    # the original release's 8-bit conversion: truncation of (x + 1) / 2 * 255
    x = torch.tensor([[[[-1.0, 0.0, 0.999]]]]).expand(1, 3, 1, 3)
    from pyi2i.reports import to_uint8
    assert to_uint8(x)[0, 0].tolist() == [[0, 0, 0], [127, 127, 127], [254, 254, 254]]


@pytest.mark.parametrize("args, message", [
    (["--dataroot", "/nonexistent/data"], "not found"),
    (["--dataroot", "{empty}"], "no readable images"),
    (["--dataroot", "{demo}", "--device", "cuda:0"] if not torch.cuda.is_available() else ["--dataroot", "/x"],
     "no usable CUDA device" if not torch.cuda.is_available() else "not found"),
])
def test_training_input_errors_are_clear(demo_root, tmp_path, args, message):
    (tmp_path / "empty" / "trainA").mkdir(parents=True)
    (tmp_path / "empty" / "trainB").mkdir()
    args = [a.format(empty=tmp_path / "empty", demo=demo_root / "unpaired") for a in args]
    r = run("pyi2i.train", *args, "--checkpoints_dir", str(tmp_path), *SMALL)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--crop_size", "300"], "--crop_size 300 is larger than --load_size 286"),
    (["--lr", "-1"], "--lr must be at least 0, got -1.0"),
    (["--arch", "pix2pix", "--dataset_mode", "unaligned"], "pix2pix trains on paired data"),
    (["--netG", "resnet_5blocks"], "invalid choice"),
])
def test_bad_option_values_are_rejected(args, message):
    r = run("pyi2i.train", "--dataroot", "x", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_translate_rejects_an_incompatible_file(demo_root, tmp_path):
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7)}, tmp_path / "bad.pth")
    r = run("pyi2i.translate", "--checkpoint", str(tmp_path / "bad.pth"), "--input", str(demo_root / "unpaired" / "testA"),
            "--output", str(tmp_path / "out"))
    assert r.returncode == 1 and "last conv" in r.stderr


def test_dali_loader_without_dali_says_how_to_install(demo_root, tmp_path):
    # None in sys.modules makes `import nvidia.dali` fail, as on a machine without DALI.
    hide_dali = ("import runpy, sys; sys.modules['nvidia.dali'] = None; "
                 "runpy.run_module('pyi2i.train', run_name='__main__', alter_sys=True)")
    r = subprocess.run([sys.executable, "-c", hide_dali, "--dataroot", str(demo_root / "unpaired"), "--loader", "dali",
                        "--checkpoints_dir", str(tmp_path), *SMALL], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--loader dali: NVIDIA DALI is not installed" in r.stderr and 'pip install "pyi2i[dali]"' in r.stderr
