"""python -m pyi2i.evaluate on the demo data, with the small stand-in feature network where Inception-v3
weights are not available."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pyi2i import metrics

TESTS = Path(__file__).parent
FEATURES = ["--feature_extractor", "stand_in_features:tiny_features"]


def evaluate(*args, torch_home):
    env = {**os.environ, "TORCH_HOME": str(torch_home),
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pyi2i.evaluate", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def printed(stdout):
    return {name: float(value) for name, value in (line.split() for line in stdout.splitlines())}


@pytest.fixture
def noisy(demo_root, tmp_path):
    """The demo's hidden test targets with noise added, saved as NAME_fake.png as translate.py names them."""
    rng = np.random.default_rng(0)
    out = tmp_path / "fakes"
    out.mkdir()
    for path in sorted((demo_root / "unpaired" / "testA_target").iterdir()):
        image = np.asarray(Image.open(path).convert("RGB")).astype(int)
        image = np.clip(image + rng.integers(-40, 41, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(out / f"{path.stem}_fake.png")
    return out


def test_metrics_of_generated_images_against_their_targets(demo_root, noisy, tmp_path):
    targets = demo_root / "unpaired" / "testA_target"
    r = evaluate("--real", targets, "--fake", noisy, *FEATURES, "--json", tmp_path / "out.json", torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    values = printed(r.stdout)
    assert set(values) >= {"fid", "kid", "kid_std", "psnr", "ssim"}
    assert values["fid"] > 0 and 10 < values["psnr"] < 40 and 0 < values["ssim"] < 1
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["counts"] == {"real": 4, "fake": 4, "pairs": 4}
    # the command computes what the Python API computes
    m, _ = metrics.build_metrics(feature_extractor=FEATURES[1], lpips=False)
    expected, _, _ = metrics.evaluate_folders(targets, noisy, m)
    for name in ("fid", "psnr", "ssim"):
        assert saved["metrics"][name] == pytest.approx(expected[name], rel=1e-5)

    same = printed(evaluate("--real", targets, "--fake", targets, *FEATURES, torch_home=tmp_path).stdout)
    assert abs(same["fid"]) < 1e-6 and same["ssim"] == pytest.approx(1.0)


def test_without_inception_weights_the_command_names_the_missing_file(demo_root, noisy, tmp_path):
    targets = demo_root / "unpaired" / "testA_target"
    r = evaluate("--real", targets, "--fake", noisy, "--inception_weights", tmp_path / "missing.pth",
                 torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "FID, KID skipped" in r.stderr and str(tmp_path / "missing.pth") in r.stderr
    assert set(printed(r.stdout)) == {"psnr", "ssim"}  # these need no weights
    if importlib.util.find_spec("torch_fidelity") is not None:
        pytest.skip("torch-fidelity is installed, so the default location would be downloaded into")
    r = evaluate("--real", targets, "--fake", noisy, torch_home=tmp_path)
    assert metrics.INCEPTION_FILE in r.stderr and str(tmp_path / "hub" / "checkpoints") in r.stderr


def unpaired(noisy):
    """The fakes under names that no real image has."""
    for path in noisy.iterdir():
        path.rename(path.with_name("other_" + path.name))
    return noisy


def test_unpaired_folders_get_fid_only_and_say_why(demo_root, noisy, tmp_path):
    r = evaluate("--real", demo_root / "unpaired" / "testB", "--fake", unpaired(noisy), *FEATURES, torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no real image of the same name" in r.stderr
    assert set(printed(r.stdout)) == {"fid", "kid", "kid_std"}


def test_nothing_computable_is_an_error(demo_root, noisy, tmp_path):
    r = evaluate("--real", demo_root / "unpaired" / "testB", "--fake", unpaired(noisy), "--inception_weights",
                 tmp_path / "missing.pth", torch_home=tmp_path)
    assert r.returncode == 1 and "no metric could be computed" in r.stderr and "Traceback" not in r.stderr


def test_deeper_images_are_quantised_to_the_8_bits_the_metrics_take(demo_root, tmp_path):
    """The same images stored as 16-bit PNG and as float .npy give the metrics of the 8-bit ones."""
    from pyi2i.data.decode import write_png16

    targets = demo_root / "unpaired" / "testA_target"
    deep = tmp_path / "deep"
    deep.mkdir()
    for i, path in enumerate(sorted(targets.iterdir())):
        image = np.asarray(Image.open(path).convert("RGB"))
        if i % 2:
            np.save(deep / f"{path.stem}_fake.npy", image.astype(np.float32) / 255)
        else:
            with open(deep / f"{path.stem}_fake.png", "wb") as f:
                write_png16(image.astype(np.uint16) * 257, f)
    m, _ = metrics.build_metrics(feature_extractor=FEATURES[1], lpips=False)
    values, skipped, counts = metrics.evaluate_folders(targets, deep, m)
    assert counts == {"real": 4, "fake": 4, "pairs": 4} and "psnr" not in skipped
    assert values["psnr"] == float("inf") or values["psnr"] > 90
    assert values["ssim"] == pytest.approx(1.0, abs=1e-6) and values["fid"] == pytest.approx(0.0, abs=1e-3)
    gray = np.load(deep / f"{sorted(targets.iterdir())[1].stem}_fake.npy")[..., :1]
    np.save(tmp_path / "gray.npy", gray)
    loaded = metrics.load_uint8(tmp_path / "gray.npy")
    assert loaded.shape[0] == 3 and torch.equal(loaded[0], loaded[2])  # one channel shown as gray
