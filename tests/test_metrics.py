"""Image metrics: FID, KID, PSNR and SSIM on data with known answers, and clear messages for what is missing."""

import math
import urllib.error

import numpy as np
import pytest
import torch
from scipy import linalg

from pyi2i import metrics
from stand_in_features import TinyFeatures

FEATURES = "stand_in_features:tiny_features"


def images(n, low=0, high=256, size=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def measure(reals, fakes, targets=None):
    m, _ = metrics.build_metrics(feature_extractor=FEATURES, lpips=False)
    m.add_reals(reals)
    m.add_fakes(fakes, targets)
    return m.compute()[0]


def test_fid_of_a_set_with_itself_is_zero():
    x = images(20)
    same, other = measure(x, x), measure(x, images(20, low=60, high=200, seed=2))
    # judged against the distance to a visibly different set (FID 1e-2, KID 2e-3 here), not a fixed number
    assert abs(same["fid"]) < 1e-9 * other["fid"] + 1e-12
    assert abs(same["kid"]) < 0.02 * other["kid"]  # unbiased: zero only in expectation (-2e-5 here)


def test_fid_matches_a_direct_computation_with_scipy():
    reals, fakes = images(40, seed=1), images(30, low=60, high=200, seed=2)
    with torch.no_grad():
        f_real, f_fake = (TinyFeatures()(x).double().numpy() for x in (reals, fakes))
    mu1, mu2 = f_real.mean(0), f_fake.mean(0)
    s1, s2 = np.cov(f_real, rowvar=False), np.cov(f_fake, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert expected > 1e-3  # the sets differ, so the comparison means something
    assert measure(reals, fakes)["fid"] == pytest.approx(expected, rel=1e-4)


def test_kid_matches_the_unbiased_polynomial_mmd():
    # With equal set sizes every KID subset holds all samples, so the estimate is exact.
    reals, fakes = images(24, seed=3), images(24, low=40, high=220, seed=4)
    with torch.no_grad():
        x, y = (TinyFeatures()(t).double().numpy() for t in (reals, fakes))
    d, n = x.shape[1], len(x)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) - 2 * kxy.mean()
    values = measure(reals, fakes)
    assert values["kid"] == pytest.approx(expected, rel=1e-4, abs=1e-9)
    assert values["kid_std"] < 1e-6


def test_psnr_is_the_mean_over_images_and_ssim_of_constant_images_is_known():
    targets = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    fakes = targets.clone()
    fakes[0] += 26
    fakes[1] += 51
    psnr = [-10 * math.log10((v / 255) ** 2) for v in (26, 51)]
    values = measure(targets, fakes, targets)
    assert values["psnr"] == pytest.approx(sum(psnr) / 2, rel=1e-5)

    a, b = torch.full((1, 3, 32, 32), 51, dtype=torch.uint8), torch.full((1, 3, 32, 32), 102, dtype=torch.uint8)
    c1 = 0.01 ** 2  # (K1 * data range)^2
    expected = (2 * 0.2 * 0.4 + c1) / (0.2 ** 2 + 0.4 ** 2 + c1)  # contrast and structure terms are 1
    assert measure(a, a, b)["ssim"] == pytest.approx(expected, rel=1e-4)
    assert measure(a, a, a)["ssim"] == pytest.approx(1.0)


def test_too_few_images_for_fid_are_reported_not_raised():
    m, _ = metrics.build_metrics(feature_extractor=FEATURES, lpips=False)
    m.add_reals(images(1))
    m.add_fakes(images(1))
    values, skipped = m.compute()
    assert "fid" not in values and "at least 2" in skipped["fid"]


def test_missing_inception_weights_name_the_file_and_where_it_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(metrics.MetricUnavailable) as e:
        metrics.inception_weights()
    message = str(e.value)
    assert metrics.INCEPTION_FILE in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert metrics.INCEPTION_URL in message and "no network" in message

    with pytest.raises(metrics.MetricUnavailable, match="elsewhere.pth"):
        metrics.inception_weights(tmp_path / "elsewhere.pth")

    # Without weights the other metrics still work, and FID/KID say why they are missing.
    m, skipped = metrics.build_metrics(lpips=False)
    assert metrics.INCEPTION_FILE in skipped["fid"] and skipped["kid"] == skipped["fid"]
    x = images(3)
    m.add_reals(x)
    m.add_fakes(x, x)
    values, _ = m.compute()
    assert set(values) == {"psnr", "ssim"}


def test_lpips_is_computed_or_its_absence_explained():
    m, skipped = metrics.build_metrics(feature_extractor=FEATURES)
    if m.lpips is None:
        assert "torchvision" in skipped["lpips"] or "alexnet" in skipped["lpips"].lower()
    else:
        x = images(2, size=64)
        m.add_fakes(x, x)
        assert m.compute()[0]["lpips"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("spec, message", [
    ("no_colon", "expected 'package.module:callable'"),
    ("no_such_module_xyz:f", "No module named"),
    ("stand_in_features:missing", "has no attribute"),
])
def test_bad_feature_extractor_names_are_rejected_clearly(spec, message):
    with pytest.raises(ValueError, match=message):
        metrics.load_feature_extractor(spec)
