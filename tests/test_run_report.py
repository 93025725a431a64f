"""The HTML run report: what one training command leaves, how it grows, and how a browser shows it."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pyi2i import reports
from pyi2i.run_report import RunReport


def test_one_training_command_gives_metrics_plots_and_a_report(trained_run):
    rows = reports.read_csv(trained_run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for name in ("heldout_l1", "fid", "kid", "psnr", "ssim"):
        assert all(float(r[name]) == float(r[name]) for r in rows), name  # present and not NaN

    page = (trained_run / "index.html").read_text()
    sources = re.findall(r"src='([^'?]+)", page)
    assert {"report/losses.png", "report/training.png", "report/metrics.png",
            "samples/epoch_001.png", "samples/epoch_002.png"} <= set(sources)
    for source in sources:
        with Image.open(trained_run / source) as image:
            assert image.width >= 32 and image.height >= 32, source
    assert page.count("<section>") == 2 and "Configuration" in page and "resnet_6blocks" in page
    for header in ("images/s", "peak memory", "fid", "ssim"):
        assert f"<th>{header}</th>" in page
    assert "finished: 2 epochs" in page


def test_the_report_grows_and_keeps_earlier_epochs(tmp_path):
    run = tmp_path / "run"
    reports.CsvLog(run / "loss_log.csv", ["step", "lr", "images_per_s", "G"]).write(
        dict(step=1, lr=0.1, images_per_s=3.0, G=1.0))
    first = RunReport(run, {"lr": 0.1}, ["G"])
    first.add_epoch(1, step=1, metrics={"fid": 3.0})
    piece = (run / "report" / "epoch_001.json").read_bytes()
    # a resumed run builds a new RunReport over the same folder
    second = RunReport(run, {"lr": 0.1, "continue_train": True}, ["G"])
    second.add_note("FID skipped: no weights")
    second.add_epoch(2, step=2, metrics={"fid": 2.0})
    page = (run / "index.html").read_text()
    assert "Epoch 1 (step 1)" in page and "Epoch 2 (step 2)" in page and "FID skipped: no weights" in page
    assert (run / "report" / "epoch_001.json").read_bytes() == piece
    assert not list(run.rglob(".*.tmp"))


def test_the_report_is_built_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    report = RunReport(tmp_path, {}, ["G"])
    report.add_epoch(1, step=1, metrics={})
    page = (tmp_path / "index.html").read_text()
    assert "matplotlib is not installed" in page and "<img class='plot'" not in page


def browser():
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


@pytest.mark.skipif(browser() is None, reason="no Chromium on this machine (Debian: apt-get install chromium); "
                                               "the report was checked without a browser")
def test_a_browser_renders_the_report(trained_run, tmp_path):
    shot = tmp_path / "report.png"
    width, height = 1000, 1400
    r = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={width},{height}", f"--screenshot={shot}",
                        (trained_run / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), r.stderr
    with Image.open(shot) as image:
        assert image.size == (width, height)
        pixels = np.asarray(image.convert("L"), dtype=float)
    # plots and sample grids make a page far from blank
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01


def test_a_log_written_with_other_columns_gains_the_new_ones(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,heldout_l1\n1,8,0.3\n")
    reports.CsvLog(path, ["epoch", "step", "heldout_l1", "fid"]).write(dict(epoch=2, step=16, heldout_l1=0.2, fid=3.0))
    assert reports.read_csv(path) == [{"epoch": "1", "step": "8", "heldout_l1": "0.3", "fid": ""},
                                      {"epoch": "2", "step": "16", "heldout_l1": "0.2", "fid": "3"}]
