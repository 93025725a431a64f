"""The training loop: fetch a batch, step, log, save. Set-up and the pieces around the loop live in
their own modules (methods, batches, meter, stop, profiling, record); this file only drives them."""

from __future__ import annotations

import logging
import math
import random
import signal
import time
from pathlib import Path

import torch
from tqdm import tqdm

from pyi2i import checkpoints, config as configuration, fileio
from pyi2i.config import DISPLAY_NOTE, DisplayConfig, TrainConfig
from pyi2i.engine import distributed
from pyi2i.engine.batches import Batches, training_dataset
from pyi2i.engine.graphs import CudaGraphStep
from pyi2i.engine.guard import NonFiniteGuard, NonFiniteLoss
from pyi2i.engine.lock import RunLock
from pyi2i.engine.meter import LossMeter
from pyi2i.engine.methods import METHODS, build_method
from pyi2i.engine.profiling import StepProfiler
from pyi2i.engine.record import RunRecord
from pyi2i.engine.schedule import make_scheduler, step_scheduler
from pyi2i.engine.stop import StopRequest
from pyi2i.errors import UserError

log = logging.getLogger("pyi2i")

LATEST = "latest.pt"
CONFIG_FILE = "config.toml"


# NonFiniteLoss is raised by the guard and caught by callers of the trainer.
__all__ = ["METHODS", "NonFiniteLoss", "RunExists", "Trainer", "resolve_device", "train"]


class RunExists(UserError, FileExistsError):
    """The run folder already holds a run, and --continue_train was not given."""


class DeviceUnavailable(UserError, ValueError):
    """--device names a device this machine does not have."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"--device {name}: this machine has no usable CUDA device "
                                f"(torch {torch.__version__}); use --device cpu")
    return device


class Trainer:
    """One run: built from a configuration (resolved here), then `train()`."""

    def __init__(self, config: TrainConfig):
        self.config = config = config.resolve()
        self.world, self.device = distributed.setup(resolve_device(config.run.device))
        self.run_dir = config.run_dir
        self.check_features()
        self.dataset = training_dataset(config)  # bad folders fail here, before anything is built
        # One writer per run folder; under torchrun rank 0 writes for all. Taken before the folder is
        # read, so that a second run never sees a half-written state.
        self.lock = RunLock(self.run_dir).acquire() if self.world.is_main else None
        if self.world.is_main:
            for orphan in fileio.remove_orphans(self.run_dir):
                log.info("removed %s, left by an interrupted save", orphan)
        # Each rank its own random stream (dropout, pool choices); the weights are rank 0's, which
        # DDP broadcasts, and the data order and augmentation follow --seed alone.
        seed = config.run.seed + self.world.rank
        torch.manual_seed(seed)
        random.seed(seed)  # the image pool's choices without --cuda-graphs
        self.method = build_method(config, self.device)
        self.schedulers = {k: make_scheduler(o, config.optim) for k, o in self.method.optimizers.items()}
        graphed = config.speed.cuda_graphs and self.device.type == "cuda"
        self.step_fn = CudaGraphStep(self.method) if graphed else self.method.step
        self.epoch, self.epoch_iter, self.step = config.optim.epoch_count, 0, 0
        self.last_good = "none (nothing was saved yet)"
        if config.run.continue_train:
            self.resume()
        elif (self.run_dir / LATEST).exists():
            raise RunExists(f"{self.run_dir} already holds a run ({LATEST}): pass --continue_train to resume "
                            "it, or choose another --name; nothing was overwritten")
        self.meter = LossMeter()
        self.guard = NonFiniteGuard(self.method.loss_names,
                                    [p for net in self.method.nets.values() for p in net.parameters()],
                                    self.device, self.step)
        self.batches = Batches(self.dataset, config.data, seed=config.run.seed, device=self.device, world=self.world,
                               memory_format=self.method.memory_format)
        self.profiler = StepProfiler(config.speed.profile, self.device)
        self.record = (RunRecord(config, self.method.loss_names, self.device, self.step)
                       if self.world.is_main else None)
        if config.run.verbose:
            for name, net in self.method.nets.items():
                log.info("%s (%.3f M parameters):\n%s", name, sum(p.numel() for p in net.parameters()) / 1e6, net)
        if self.record is not None:
            if config.display != DisplayConfig():
                given = {k: v for k, v in config.display.to_dict().items() if v != getattr(DisplayConfig(), k)}
                self.record.note(f"{', '.join(f'--{k} {v}' for k, v in given.items())}: {DISPLAY_NOTE}")
            self.write_config()
            if config.run.continue_train:
                # Rows an interrupted session logged after the checkpoint it resumes from would repeat.
                dropped = self.record.loss_log.drop_after(self.step)
                if dropped:
                    log.info("dropped %d loss-log row(s) after step %d, logged after that checkpoint", dropped,
                             self.step)
        # Throughput and the plateau schedule's metric, per report and per epoch: (time, step) marks.
        self.tick = self.epoch_start = (time.perf_counter(), self.step)
        self.epoch_G_loss: list[float] = []

    def resume(self) -> None:
        """The state of the checkpoint --epoch / --load_iter name (by default the newest good one),
        with what this run changes said; or, where the run folder holds only the original release's
        weight files, those weights."""
        label = self.config.run.checkpoint_label
        path = self.run_dir / checkpoints.training_file(label)
        originals = [self.run_dir / f"{label}_net_{name}.pth" for name in self.method.nets]
        # "latest" falls back to the newest epoch checkpoint when latest.pt is damaged or gone
        has_state = path.exists() or (label == "latest" and any(self.run_dir.glob("epoch_*.pt")))
        if not has_state and all(p.is_file() for p in originals):
            self.fine_tune(label, originals)
            return
        if label == "latest":
            state, latest = checkpoints.load_latest(self.run_dir, LATEST)
        else:
            state, latest = checkpoints.load(path), path
        current = self.config.flat()
        checkpoints.check_resumable(state, current, latest)  # the architecture cannot change
        changed = configuration.changes(state["config"], current)
        if changed:
            log.info("continuing with changed options: %s",
                     ", ".join(f"--{k} {old} -> {new}" for k, (old, new) in changed.items()))
        seed = self.config.run.seed + self.world.rank
        if not checkpoints.restore(state, self.method, self.schedulers, self.world.rank):
            torch.manual_seed(seed + state["step"])
            random.seed(seed + state["step"])
        saved_ranks = 1 + len(state.get("ranks", {}))
        if saved_ranks != self.world.world_size:
            log.warning("%s was written by %d process(es) and this run has %d: each rank resumes the random "
                        "stream and image pool saved for its rank, if any, and starts new ones otherwise",
                        latest, saved_ranks, self.world.world_size)
        self.epoch, self.epoch_iter, self.step = state["epoch"], state["epoch_iter"], state["step"]
        log.info("resumed %s at epoch %d, step %d", latest, self.epoch, self.step)
        self.last_good = f"{latest} (step {self.step})"

    def fine_tune(self, label: str, files: list[Path]) -> None:
        """Starts from the original release's weight files (`LABEL_net_NAME.pth`)."""
        for name, path in zip(self.method.nets, files):
            checkpoints.load_original(self.method.nets[name], path)
        log.warning("fine-tuning from the original release's weights %s: the optimizers, schedules and image pools "
                    "start fresh (the original saves weights only), and training starts at epoch %d "
                    "(--epoch_count)", ", ".join(p.name for p in files), self.epoch)
        self.last_good = f"{files[0].parent / (label + '_net_*.pth')} (original weights)"

    def write_config(self) -> None:
        """The resolved configuration, as config.toml (training from it reproduces the run) and as
        the original release's train_opt.txt."""
        fileio.write_text(self.run_dir / CONFIG_FILE, self.config.to_toml())
        fileio.write_text(self.run_dir / f"{self.config.data.phase}_opt.txt", configuration.train_opt_text(self.config))

    def release(self) -> None:
        """Lets another run write to the run folder (the kernel does it too when the process ends)."""
        if self.lock is not None:
            self.lock.release()

    @property
    def last_epoch(self) -> int:
        return self.config.last_epoch

    def check_features(self) -> None:
        speed = self.config.speed
        problem = distributed.unsupported(self.world, self.device, cuda_graphs=speed.cuda_graphs,
                                          norm=self.config.model.norm)
        if problem:
            raise ValueError(problem)
        if speed.amp:
            log.info("mixed precision: %s autocast on %s%s", speed.amp, self.device.type,
                     ", with gradient scaling" if speed.amp == "fp16" else "")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # shapes are fixed within a run
            return
        if speed.cuda_graphs:
            log.warning("--cuda-graphs needs a CUDA device; training eagerly on %s", self.device)

    # -- the loop -------------------------------------------------------------------------------
    def train(self) -> None:
        try:
            self.train_loop()
        finally:
            self.release()

    def train_loop(self) -> None:
        c = self.config
        log.info("training %s on %s (%d samples) on %s with the %s loader; run folder %s", c.model.arch,
                 c.data.dataroot, len(self.dataset), self.device, self.batches.name, self.run_dir)
        with StopRequest() as stop:
            while self.epoch <= self.last_epoch:
                stopped = self.train_epoch(stop)
                if stopped:
                    self.save(LATEST)
                    self.finish_record(f"stopped at epoch {self.epoch}, step {self.step} ({stopped})")
                    if stop.signal is not None:
                        log.warning("stopped by %s at step %d; resume with --continue_train",
                                    signal.Signals(stop.signal).name, self.step)
                        raise SystemExit(128 + stop.signal)
                    log.info("%s; resume with --continue_train", stopped)
                    return
                self.end_epoch()
        self.finish_record(f"finished: {self.last_epoch} epochs, {self.step} steps")
        log.info("training finished: %d epochs, %d steps; weights in %s", self.last_epoch - c.optim.epoch_count + 1,
                 self.step, self.run_dir)

    def finish_record(self, status: str) -> None:
        if self.record is not None:
            self.record.stopped(status)
            if self.record.report is not None:
                log.info("report: %s", self.run_dir / "index.html")
        # torchrun stops every process once one has ended: none may end while rank 0 still writes.
        self.world.barrier()

    def train_epoch(self, stop: StopRequest) -> str | None:
        """Runs the rest of the current epoch; says why when it stopped early."""
        run, world, max_steps = self.config.run, self.world, self.config.optim.max_steps
        total = math.ceil(math.ceil(len(self.dataset) / world.world_size) / self.config.data.batch_size)
        bar = tqdm(total=total, initial=self.epoch_iter, desc=f"epoch {self.epoch}/{self.last_epoch}",
                   disable=run.no_progress or not world.is_main, dynamic_ncols=True, leave=False)
        self.tick = self.epoch_start = (time.perf_counter(), self.step)
        self.epoch_G_loss = []
        graphed = isinstance(self.step_fn, CudaGraphStep)
        # DALI can write straight into the captured graph's inputs.
        batches = self.batches.epoch(self.epoch, self.epoch_iter, out=self.step_fn.input_buffers if graphed else None)
        # Profiling starts after warm-up (with CUDA graphs: after capture).
        warmup = 2 + (self.step_fn.warmup + 1 if graphed else 0)
        with bar, self.profiler.session(self.step, warmup) as profiler:
            for batch in batches:
                losses = self.step_fn(batch)
                self.guard.check(losses)
                self.meter.add(losses)
                self.step += 1
                self.epoch_iter += 1
                bar.update()
                if profiler is not None:
                    profiler.step()
                if self.step % run.print_freq == 0:
                    self.report(bar)
                if self.step % run.save_latest_freq == 0:
                    self.save(LATEST)
                    if run.save_by_iter:
                        self.save(checkpoints.training_file(f"iter_{self.step}"), label=f"iter_{self.step}")
                if self.record is not None and self.step % run.display_freq == 0:
                    self.record.sample(self.method.visuals, self.step)
                if stop.requested(world):
                    return "signal"
                if max_steps and self.step >= max_steps:
                    return f"reached --max_steps {max_steps}"
                if profiler is not None and (done := self.profiler.done(self.step)):
                    return done
        return None

    def report(self, bar=None) -> dict[str, float]:
        """Checks the losses and weights, reads the losses accumulated since the last report (one host
        sync) and logs them."""
        self.guard.raise_if_bad(self.world, self.last_good)
        means = self.meter.read(self.method.loss_names, self.world)
        if not means:
            return means
        now = time.perf_counter()
        images_per_s = self.images(self.step - self.tick[1]) / max(now - self.tick[0], 1e-9)
        self.tick = (now, self.step)
        self.epoch_G_loss.append(sum(v for k, v in means.items() if not k.startswith("D")))
        lr = self.method.optimizers["G"].param_groups[0]["lr"]
        if self.record is not None:
            self.record.losses(dict(step=self.step, epoch=self.epoch, epoch_iter=self.epoch_iter,
                                    time=f"{time.time():.3f}", images_per_s=images_per_s, lr=lr), means)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()} | {"img/s": f"{images_per_s:.1f}"})
        return means

    def images(self, steps: int) -> int:
        """Images trained on in `steps` steps, by all ranks together."""
        return steps * self.config.data.batch_size * self.world.world_size

    def end_epoch(self) -> None:
        self.report()
        metric = sum(self.epoch_G_loss) / len(self.epoch_G_loss) if self.epoch_G_loss else 0.0
        for scheduler in self.schedulers.values():
            step_scheduler(scheduler, metric)
        if self.record is not None:  # rank 0 evaluates and records while the others go on to the next save
            seconds, images = time.perf_counter() - self.epoch_start[0], self.images(self.step - self.epoch_start[1])
            values = self.record.evaluate(self.epoch, self.last_epoch, self.method.translator)
            self.record.epoch_end(self.epoch, self.step, self.method.visuals, values, seconds=seconds, images=images)
            log.info("epoch %d/%d done, step %d%s", self.epoch, self.last_epoch, self.step,
                     "".join(f", {k} {v:.4g}" for k, v in values.items()))
        epoch = self.epoch
        self.epoch, self.epoch_iter = self.epoch + 1, 0
        self.save(LATEST)
        if epoch % self.config.run.save_epoch_freq == 0 or epoch == self.last_epoch:
            self.save(f"epoch_{epoch:03d}.pt", label=str(epoch))

    def save(self, filename: str, label: str = "latest") -> None:
        """Full state as `filename` plus the networks in the original format; never saves NaNs."""
        self.report()  # raises NonFiniteLoss before anything is written
        # Every rank's random streams and pools go into rank 0's one file.
        ranks = self.world.gather(checkpoints.rank_state(self.method) if self.world.distributed else None)
        if not self.world.is_main:
            return
        state = checkpoints.training_state(self.method, self.schedulers, self.config.flat(), epoch=self.epoch,
                                           epoch_iter=self.epoch_iter, step=self.step,
                                           other_ranks={r: s for r, s in enumerate(ranks) if r > 0})
        checkpoints.atomic_save(state, self.run_dir / filename)
        checkpoints.export_original(self.method, self.run_dir, label)
        self.last_good = f"{self.run_dir / filename} (step {self.step})"


def train(config: TrainConfig) -> Trainer:
    trainer = Trainer(config)
    trainer.train()
    return trainer
