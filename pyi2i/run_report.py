"""The run's HTML report, `<run>/index.html`: configuration, loss, learning-rate, throughput and
metric curves (PNG plots), and one section per epoch with its sample grid, metrics, throughput and
peak memory.

The report grows with the run. Each finished epoch leaves a small piece, `report/epoch_NNN.json`,
that is written once and never regenerated; the page is assembled from these pieces and the run's
CSV logs. So a resumed run adds to the report of the sessions before it, and nothing an earlier
epoch recorded is lost (the original release instead rebuilt its page from whatever image files it
expected to find). Plots need matplotlib; without it the page still has everything else.
"""

from __future__ import annotations

import datetime
import html
import importlib.util
import json
import logging
import math
from pathlib import Path
from typing import Sequence

from pyi2i import fileio
from pyi2i.reports import read_csv

log = logging.getLogger("pyi2i")

PLOTS = {"losses": "losses", "training": "learning rate and throughput", "metrics": "metrics"}


def _numbers(rows: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    """The (x, y) points of the rows where both columns hold finite numbers."""
    xs, ys = [], []
    for row in rows:
        try:
            a, b = float(row[x]), float(row[y])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(a) and math.isfinite(b):
            xs.append(a)
            ys.append(b)
    return xs, ys


def plot_curves(rows: list[dict], x: str, ys: Sequence[str], path: Path, xlabel: str) -> bool:
    """One small panel per column of `ys` against column `x`, as a PNG; False when nothing to plot."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend
    from matplotlib.ticker import MaxNLocator

    series = {y: _numbers(rows, x, y) for y in ys}
    series = {y: points for y, points in series.items() if points[0]}
    if not series:
        return False
    columns = min(4, len(series))
    rows_n = math.ceil(len(series) / columns)
    fig = Figure(figsize=(3.2 * columns, 2.4 * rows_n), layout="constrained")
    for i, (name, (xs, values)) in enumerate(series.items()):
        ax = fig.add_subplot(rows_n, columns, i + 1)
        ax.plot(xs, values, marker="o" if len(xs) < 30 else None, markersize=3, linewidth=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and epochs are counts
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    return True


class RunReport:
    """Builds `<run_dir>/index.html` from pieces kept in `<run_dir>/report/`."""

    def __init__(self, run_dir: str | Path, config: dict, loss_names: Sequence[str], title: str | None = None):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "report"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.loss_names = list(loss_names)
        self.title = title or self.run_dir.name
        fileio.write_text(self.dir / "config.json", json.dumps(config, indent=1, sort_keys=True, default=str))

    # -- pieces ---------------------------------------------------------------------------------
    def add_note(self, text: str) -> None:
        """A line shown at the top of the report (e.g. why a metric is skipped), once."""
        notes = self._load("notes.json", [])
        if text not in notes:
            fileio.write_text(self.dir / "notes.json", json.dumps(notes + [text], indent=1))

    def add_epoch(self, epoch: int, **fields) -> None:
        """Records a finished epoch (step, seconds, images_per_s, peak_memory, sample, metrics, ...)
        and updates the page."""
        piece = {"epoch": epoch, "time": datetime.datetime.now().isoformat(timespec="seconds"), **fields}
        fileio.write_text(self.dir / f"epoch_{epoch:03d}.json", json.dumps(piece, indent=1, default=str))
        self.update()

    def epochs(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("epoch_*.json"))]

    def _load(self, name: str, default):
        path = self.dir / name
        return json.loads(path.read_text()) if path.exists() else default

    # -- the page -------------------------------------------------------------------------------
    def update(self, status: str = "") -> Path:
        """Redraws the plots from the run's CSV logs and assembles index.html from the pieces."""
        plots = self._plots()
        page = self._page(plots, status)
        fileio.write_text(self.run_dir / "index.html", page)
        return self.run_dir / "index.html"

    def _plots(self) -> list[str]:
        """Names of the plots drawn (a subset of PLOTS)."""
        if importlib.util.find_spec("matplotlib") is None:
            self.add_note("matplotlib is not installed, so the report has no plots (pip install matplotlib)")
            return []
        drawn = []
        losses = self.run_dir / "loss_log.csv"
        if losses.exists():
            rows = read_csv(losses)
            if plot_curves(rows, "step", self.loss_names, self.dir / "losses.png", "step"):
                drawn.append("losses")
            if plot_curves(rows, "step", ["lr", "images_per_s"], self.dir / "training.png", "step"):
                drawn.append("training")
        metrics = self.run_dir / "metrics.csv"
        if metrics.exists():
            rows = read_csv(metrics)
            names = [k for k in (rows[0] if rows else {}) if k not in ("epoch", "step")]
            if plot_curves(rows, "epoch", names, self.dir / "metrics.png", "epoch"):
                drawn.append("metrics")
        return drawn

    def _page(self, plots: list[str], status: str) -> str:
        e = html.escape
        config = self._load("config.json", {})
        epochs = self.epochs()
        now = datetime.datetime.now().isoformat(timespec="seconds")
        stamp = epochs[-1]["step"] if epochs else 0
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title><style>{_CSS}</style>"
                 f"</head><body><h1>{e(self.title)}</h1>",
                 f"<p class='status'>{e(status or f'{len(epochs)} epoch(s) recorded')}; updated {now}</p>"]
        parts += [f"<p class='note'>{e(note)}</p>" for note in self._load("notes.json", [])]
        for name in plots:
            parts.append(f"<h2>{e(PLOTS[name].capitalize())}</h2>"
                         f"<img class='plot' alt='{e(PLOTS[name])}' src='report/{name}.png?v={stamp}'>")
        if epochs:
            metric_names = list(dict.fromkeys(k for ep in epochs for k in ep.get("metrics", {})))
            head = ["epoch", "step", "time (s)", "images/s", "peak memory"] + metric_names
            parts.append("<h2>Epochs</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            for ep in epochs:
                cells = [ep["epoch"], ep.get("step", ""), _fmt(ep.get("seconds")), _fmt(ep.get("images_per_s")),
                         ep.get("peak_memory", "")] + [_fmt(ep.get("metrics", {}).get(m)) for m in metric_names]
                parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
            parts.append("<h2>Samples</h2>")
            for ep in reversed(epochs):
                sample = ep.get("sample")
                image = f"<img class='sample' alt='epoch {ep['epoch']} samples' src='{e(sample)}'>" if sample else ""
                caption = ep.get("sample_columns", "")
                parts.append(f"<section><h3>Epoch {ep['epoch']} (step {ep.get('step', '')})</h3>{image}"
                             f"<p class='caption'>{e(caption)}</p></section>")
        parts.append("<h2>Configuration</h2><table>" + "".join(
            f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in sorted(config.items())) + "</table>")
        parts.append("</body></html>\n")
        return "\n".join(parts)


def _fmt(value) -> str:
    if value is None or value == "":
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


_CSS = ("body{font-family:sans-serif;margin:1.5em;color:#222} table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right} th{background:#f3f3f3}"
        "img.plot{max-width:100%;border:1px solid #ddd} img.sample{image-rendering:pixelated;max-width:100%}"
        ".note{background:#fff6d5;padding:6px;border-left:4px solid #e0b000} .status{color:#666}"
        ".caption{color:#666;font-size:12px}")
