"""What a run writes about itself (rank 0 only): the loss and metric logs, sample grids, TensorBoard
event files, wandb (--use_wandb), the HTML report, and the periodic evaluation on the test split
that feeds them."""

from __future__ import annotations

import logging
import resource
from pathlib import Path
from typing import Sequence

import torch

from pyi2i import metrics, reports
from pyi2i.config import TrainConfig
from pyi2i.engine.heldout import evaluate, eval_split
from pyi2i.run_report import RunReport
from pyi2i.wandb_log import WandbLog, import_wandb

log = logging.getLogger("pyi2i")

METRIC_FIELDS = ["epoch", "step", "heldout_l1", *metrics.METRIC_NAMES]


def peak_memory(device: torch.device) -> str:
    """The peak memory since the last call: the GPU's allocations, or the process's resident size."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        return f"{peak / 2**20:.0f} MiB GPU"
    # ru_maxrss is in KiB on Linux and never falls, so it is the peak of the whole run
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RSS"


class RunRecord:
    """Rank 0's writer of everything above, fed by the trainer after each report and epoch."""

    def __init__(self, config: TrainConfig, loss_names: Sequence[str], device: torch.device, step: int):
        """`config` is the resolved configuration, which the report shows whole."""
        if config.run.use_wandb:
            import_wandb()  # a missing package stops the run before anything is written
        self.eval, self.batch_size = config.eval, config.data.batch_size
        self.run_dir, self.device = config.run_dir, device
        run_dir = self.run_dir
        self.noted: set[str] = set()
        self.loss_log = reports.CsvLog(run_dir / "loss_log.csv",
                                       ["step", "epoch", "epoch_iter", "time", "images_per_s", "lr"] + list(loss_names))
        self.metric_log = reports.CsvLog(run_dir / "metrics.csv", METRIC_FIELDS)
        tensorboard = reports.TensorBoardLog(run_dir / "tensorboard", config.run.tensorboard, purge_step=step or None)
        self.report = None if config.run.no_html else RunReport(run_dir, config.flat(), loss_names,
                                                                title=f"{config.run.name} ({config.model.arch})")
        self.split = eval_split(config.data, config.model.input_nc, config.model.output_nc)
        if self.split is None and self.eval.eval_freq:
            self.note(f"no evaluation: {config.data.dataroot} has no test split (test/ or testA/)")
        self.metrics: metrics.ImageMetrics | None = None
        self.metrics_built = False
        if self.eval.feature_extractor:  # a typo fails now, not after an epoch
            metrics.feature_extractor_factory(self.eval.feature_extractor)
        # wandb's run starts last, when nothing above can stop this run any more
        self.dashboards = reports.Dashboards(tensorboard, *([WandbLog(config)] if config.run.use_wandb else []))
        peak_memory(device)  # the first epoch's GPU peak starts here, not at whatever ran before

    def note(self, text: str) -> None:
        """Said once in the log, and kept at the top of the report."""
        if text not in self.noted:
            self.noted.add(text)
            log.warning(text)
            if self.report is not None:
                self.report.add_note(text)

    def losses(self, row: dict, means: dict[str, float]) -> None:
        """One line of the loss log: row holds step, epoch, epoch_iter, time, images_per_s and lr."""
        row = {**row, "lr": float(row["lr"])}
        self.loss_log.write({**row, **means})
        self.dashboards.scalars("loss", means, row["step"])
        self.dashboards.scalars("train", {"lr": row["lr"], "images_per_s": row["images_per_s"]}, row["step"])

    def image_metrics(self) -> metrics.ImageMetrics | None:
        """Built at the first evaluation, so a run that never evaluates loads no feature network."""
        if not self.metrics_built:
            o = self.eval
            self.metrics, skipped = metrics.build_metrics(
                inception_weights=o.inception_weights, feature_extractor=o.feature_extractor,
                lpips=not o.no_lpips, device=self.device, keep_reals=True)
            self.metrics_built = True
            for reason in dict.fromkeys(skipped.values()):
                names = ", ".join(k.upper() for k, v in skipped.items() if v == reason)
                self.note(f"{names} skipped during evaluation: {reason}")
        return self.metrics

    def evaluate(self, epoch: int, last_epoch: int, translator: torch.nn.Module) -> dict[str, float]:
        """The held-out L1 every epoch (where the data has targets); every --eval_freq epochs and
        after the last one, all the image metrics as well."""
        freq = self.eval.eval_freq
        full = bool(freq) and (epoch % freq == 0 or epoch == last_epoch)
        if self.split is None or not (full or self.split.paired):
            return {}
        # Evaluation draws no training randomness, so a run's updates do not depend on --eval_freq.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            values, skipped = evaluate(translator, self.split, self.device, self.batch_size,
                                       self.image_metrics() if full else None)
        for name, reason in skipped.items():
            if name not in values:
                self.note(f"{name.upper()} not computed: {reason}")
        return values

    def epoch_end(self, epoch: int, step: int, visuals: dict, values: dict[str, float], seconds: float,
                  images: int) -> None:
        sample = None
        if visuals:
            sample = Path("samples") / f"epoch_{epoch:03d}.png"
            grid = reports.save_grid(visuals, self.run_dir / sample)
            self.dashboards.image("samples", grid, step)
        if values:
            self.metric_log.write(dict(epoch=epoch, step=step, **values))
            self.dashboards.scalars("metrics", values, step)
        images_per_s = images / max(seconds, 1e-9)
        self.dashboards.scalars("train", {"epoch_images_per_s": images_per_s}, step)
        self.dashboards.flush()
        if self.report is not None:
            self.report.add_epoch(epoch, step=step, seconds=seconds, images_per_s=images_per_s,
                                  peak_memory=peak_memory(self.device), metrics=values,
                                  sample=sample and sample.as_posix(),
                                  sample_columns=" | ".join(k for k, v in visuals.items() if v is not None))

    def sample(self, visuals: dict, step: int) -> None:
        """A grid of the last step's images in TensorBoard (and wandb), every --display_freq iterations."""
        if visuals:
            self.dashboards.image("samples", reports.image_grid(visuals), step)

    def stopped(self, status: str) -> None:
        if self.report is not None:
            self.report.update(status)
        self.dashboards.close()
