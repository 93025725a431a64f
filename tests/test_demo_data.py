import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from pyi2i import datasets as datasets_cli
from pyi2i.data import create_loader, ensure_demo, make_demo
from pyi2i.data.demo import LABEL_BACKGROUND, LABEL_COLOURS, MARKER, draw_scene
from conftest import tiny_dataset

SMALL = dict(size=16, n_train=4, n_test=2)


@pytest.fixture(autouse=True)
def seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def pixels(path):
    return np.asarray(Image.open(path))


def is_label_map(img):
    return {tuple(c) for c in img.reshape(-1, 3)} <= {LABEL_BACKGROUND, *LABEL_COLOURS}


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["paired", "unpaired"])
def test_generation_is_byte_identical(tmp_path, kind):
    first = tree(make_demo(tmp_path / "one", kind, **SMALL))
    assert first == tree(make_demo(tmp_path / "two", kind, **SMALL))
    assert first != tree(make_demo(tmp_path / "three", kind, **SMALL, seed=1))


def test_paired_layout(tmp_path):
    root = make_demo(tmp_path, "paired", **SMALL)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["0000.png", "0001.png", "0002.png", "0003.png"]
    assert len(list((root / "test").iterdir())) == 2
    ab = pixels(root / "train" / "0000.png")
    assert ab.shape == (16, 32, 3) and ab.dtype == np.uint8
    assert is_label_map(ab[:, :16])  # flat colours, no blending at the edges
    assert len({tuple(c) for c in ab[:, 16:].reshape(-1, 3)}) > 20  # renderings are shaded
    marker = json.loads((root / MARKER).read_text())
    assert marker["kind"] == "paired" and marker["complete"] and marker["size"] == 16


def test_unpaired_layout_and_hidden_targets(tmp_path):
    root = make_demo(tmp_path, "unpaired", **SMALL)
    names = {d: sorted(p.name for p in (root / d).iterdir())
             for d in ("trainA", "trainB", "testA", "testB", "testA_target", "testB_target")}
    assert len(names["trainA"]) == len(names["trainB"]) == 4
    assert names["testA"] == names["testA_target"] and names["testB"] == names["testB_target"]
    assert len(names["testA"]) == 2
    sky = draw_scene([], 16)[1]
    for name in names["testA"]:
        label, target = pixels(root / "testA" / name), pixels(root / "testA_target" / name)
        assert is_label_map(label) and not is_label_map(target)
        background = (label == LABEL_BACKGROUND).all(-1)
        assert (target[background] == sky[background]).all() and (target[~background] != sky[~background]).any(-1).all()
    for name in names["testB"]:
        assert is_label_map(pixels(root / "testB_target" / name)) and not is_label_map(pixels(root / "testB" / name))
    # trainB renders other scenes than trainA: the shapes' outlines differ.
    for name in names["trainA"]:
        a_background = (pixels(root / "trainA" / name) == LABEL_BACKGROUND).all(-1)
        b_background = (pixels(root / "trainB" / name) == sky).all(-1)
        assert not np.array_equal(a_background, b_background)


def test_ensure_demo_regenerates_only_when_needed(tmp_path):
    root = ensure_demo(tmp_path / "demo", "paired", **SMALL)
    probe = root / "train" / "0000.png"
    probe.write_bytes(b"left alone when the marker matches")
    ensure_demo(root, "paired", **SMALL)
    assert probe.read_bytes() == b"left alone when the marker matches"
    ensure_demo(root, "paired", **{**SMALL, "n_train": 3})
    assert sorted(p.name for p in (root / "train").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert pixels(probe).shape == (16, 32, 3)
    assert (ensure_demo(tmp_path / "fresh", "paired", **SMALL) / MARKER).exists()


def test_refuses_to_overwrite_other_data(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mine.png").write_bytes(b"user data")
    with pytest.raises(FileExistsError, match=MARKER):
        ensure_demo(tmp_path, "paired", **SMALL)
    assert (tmp_path / "train" / "mine.png").read_bytes() == b"user data"


def test_paired_demo_trains_through_the_loader(tmp_path):
    root = make_demo(tmp_path, "paired", **SMALL)
    ds = tiny_dataset(root, load_size=18, crop_size=16)
    batch = next(iter(create_loader(ds, batch_size=2, shuffle=True, num_workers=0, seed=0, epoch=0)))
    assert batch["A"].shape == batch["B"].shape == (2, 3, 16, 16)
    assert batch["A"].min() >= -1 and batch["B"].max() <= 1


def test_unpaired_demo_loads(tmp_path):
    root = make_demo(tmp_path, "unpaired", **SMALL)
    sample = tiny_dataset(root, dataset_mode="unaligned", phase="test", preprocess="none")[1]
    assert sample["A"].shape == sample["B"].shape == (3, 16, 16)


def test_cli_writes_both_kinds(tmp_path, capsys):
    datasets_cli.main(["demo", "--out", str(tmp_path), "--size", "8", "--n_train", "2", "--n_test", "1"])
    out = capsys.readouterr().out
    for kind in ("paired", "unpaired"):
        assert json.loads((tmp_path / kind / MARKER).read_text())["n_train"] == 2
        assert str(tmp_path / kind) in out
