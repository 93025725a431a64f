"""TensorBoard logs of a run, read back from the event files."""

import pytest

from pyi2i import reports

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def events(folder):
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_a_run_logs_losses_rates_throughput_metrics_and_samples(trained_run):
    log = events(trained_run / "tensorboard")
    scalars = set(log.Tags()["scalars"])
    assert {f"loss/{name}" for name in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")} <= scalars
    assert {"train/lr", "train/images_per_s", "train/epoch_images_per_s"} <= scalars
    assert {"metrics/heldout_l1", "metrics/fid", "metrics/kid", "metrics/psnr", "metrics/ssim"} <= scalars
    loss_rows = reports.read_csv(trained_run / "loss_log.csv")
    assert [e.step for e in log.Scalars("loss/D_A")] == [int(r["step"]) for r in loss_rows]
    assert [e.value for e in log.Scalars("loss/D_A")] == pytest.approx([float(r["D_A"]) for r in loss_rows], rel=1e-5)
    metric_rows = reports.read_csv(trained_run / "metrics.csv")
    assert [e.value for e in log.Scalars("metrics/fid")] == pytest.approx([float(r["fid"]) for r in metric_rows],
                                                                         rel=1e-5)
    samples = log.Images("samples")
    assert len(samples) == 2 and samples[0].width > 32


def test_tensorboard_can_be_switched_off(tmp_path):
    off = reports.TensorBoardLog(tmp_path / "off", enabled=False)
    off.scalars("loss", {"G": 1.0}, 1)
    off.close()
    assert not (tmp_path / "off").exists()
