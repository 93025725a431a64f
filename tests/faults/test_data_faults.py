"""Faults in the data: a symlink loop, corrupt, truncated, grayscale and huge images, a missing
folder, an error inside a loader worker, a wrong weights file, an evaluation folder holding copies of
the inputs. Outcome: the data counted once; one line naming the file and the fix."""

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from faultkit import tiny_options
from pyi2i import checkpoints, metrics
from pyi2i.cli import one_line
from pyi2i.data import DataError, create_loader, load_rgb, make_dataset
from pyi2i.engine.batches import training_dataset
from pyi2i.models import define_G
from pyi2i.models.original_format import IncompatibleCheckpoint, to_original


def save(path, size=(40, 40), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)
    return path


def test_a_symlink_loop_is_visited_once_and_the_sample_count_is_true(demo_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root / "unpaired", root)
    os.symlink(".", root / "trainA" / "again")  # a loop
    os.symlink(root / "trainA", root / "trainA" / "same")  # the folder again by its absolute path
    os.symlink(root / "trainB" / sorted(os.listdir(root / "trainB"))[0], root / "trainB" / "zz_link.png")
    a, b = len(os.listdir(demo_root / "unpaired" / "trainA")), len(os.listdir(demo_root / "unpaired" / "trainB"))
    assert len(make_dataset(root / "trainA")) == a and len(make_dataset(root / "trainB")) == b
    dataset = training_dataset(tiny_options(root, tmp_path, max_dataset_size="inf"))
    assert len(dataset) == max(a, b)


@pytest.mark.parametrize("fault", ["corrupt", "truncated", "huge"])
def test_unreadable_images_are_an_error_naming_the_file(tmp_path, monkeypatch, fault):
    path = save(tmp_path / "x.png", size=(64, 64))
    if fault == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    elif fault == "truncated":
        path.write_bytes(path.read_bytes()[:60])
    else:  # larger than Pillow's decompression-bomb limit (lowered here to keep the file small)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)
    with pytest.raises(DataError, match=rf"cannot read image {path}: .* --skip_bad_images"):
        load_rgb(path)


def test_grayscale_and_16_bit_images_load_as_rgb(tmp_path):
    gray = load_rgb(save(tmp_path / "gray.png", mode="L"))
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(deep)
    assert gray.mode == "RGB" and np.asarray(gray).max() == 128
    assert np.asarray(load_rgb(deep)).min() == 255


def test_a_missing_folder_names_the_layout(demo_root, tmp_path):
    with pytest.raises(DataError, match=rf"folder {tmp_path}/trainA not found: expected trainA/ and trainB/"):
        training_dataset(tiny_options(tmp_path, tmp_path))


def test_an_error_in_a_loader_worker_is_one_line_naming_the_file(demo_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root / "unpaired", root)
    bad = sorted((root / "trainA").iterdir())[0]
    bad.write_bytes(b"not an image")
    dataset = training_dataset(tiny_options(root, tmp_path, max_dataset_size="inf"))
    loader = create_loader(dataset, batch_size=1, shuffle=False, num_workers=1, seed=0, epoch=1)
    with pytest.raises(DataError) as error:
        list(loader)
    assert "Traceback" in str(error.value)  # how torch re-raises it
    assert one_line(error.value).startswith(f"cannot read image {bad}: ")
    assert one_line(error.value).endswith("--skip_bad_images to leave unreadable files out. (in a data-loader worker)")


def test_a_weights_file_of_another_kind_is_one_line(tmp_path):
    G = define_G("resnet_6blocks", 3, 3, 4, "instance", init=False)
    other = tmp_path / "other_net_G.pth"
    checkpoints.atomic_save(to_original(define_G("resnet_6blocks", 3, 3, 8, "instance", init=False)), other)
    not_weights = tmp_path / "list_net_G.pth"
    checkpoints.atomic_save([torch.zeros(2)], not_weights)
    with pytest.raises(IncompatibleCheckpoint, match=rf"{other}: layer .* has shape .* Check --ngf/--ndf") as error:
        checkpoints.load_original(G, other)
    assert "\n" not in one_line(error.value)
    with pytest.raises(IncompatibleCheckpoint, match=rf"{not_weights} does not hold a state dict of tensors"):
        checkpoints.load_original(G, not_weights)


def test_evaluate_counts_only_the_generated_images(tmp_path):
    targets, out = tmp_path / "targets", tmp_path / "out"
    for name in ("a", "b"):
        save(targets / f"{name}.png")
        save(out / f"{name}_fake.png")
        save(out / f"{name}_real.png")  # translate's copy of the input
    assert [os.path.basename(p) for p in metrics.generated_images(make_dataset(out), out)] == \
        ["a_fake.png", "b_fake.png"]
    image_metrics = metrics.ImageMetrics(device="cpu")
    values, skipped, counts = metrics.evaluate_folders(targets, out, image_metrics)
    assert counts == {"real": 2, "fake": 2, "pairs": 2} and values["psnr"] > 0


def test_evaluate_refuses_a_folder_of_inputs_alone(tmp_path):
    for name in ("a", "b"):
        save(tmp_path / "out" / f"{name}_real.png")
    with pytest.raises(DataError, match=r"2 \*_real\* image\(s\) .* cannot be told apart"):
        metrics.generated_images(make_dataset(tmp_path / "out"), tmp_path / "out")
