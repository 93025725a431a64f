"""The training loop: set-up, the step, logging, checkpointing. Method-specific logic lives in
pyi2i.engine.cyclegan / pix2pix; this file only drives it."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import random
import signal
import time
from pathlib import Path

import torch
from tqdm import tqdm

from pyi2i import checkpoints, fileio
from pyi2i.data import create_dataset, create_loader
from pyi2i.data.dali import DaliLoader, DaliUnavailable, resolve_loader
from pyi2i.engine import distributed
from pyi2i.engine.cyclegan import CycleGAN
from pyi2i.engine.graphs import CudaGraphStep, prefetch_to_device
from pyi2i.engine.guard import NonFiniteGuard, NonFiniteLoss
from pyi2i.engine.lock import RunLock
from pyi2i.engine.pix2pix import Pix2Pix
from pyi2i.engine.record import RunRecord
from pyi2i.engine.schedule import make_scheduler, step_scheduler
from pyi2i.errors import UserError

log = logging.getLogger("pyi2i")

METHODS = {"cyclegan": CycleGAN, "pix2pix": Pix2Pix}
LATEST = "latest.pt"
PROFILE_STEPS = 5


# NonFiniteLoss is raised by the guard and caught by callers of the trainer.
__all__ = ["NonFiniteLoss", "RunExists", "Trainer", "resolve_device", "train"]


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


class LossMeter:
    """Sums the step's losses on the device; reading them (a host sync) happens only in `read`."""

    def __init__(self):
        self.sums: torch.Tensor | None = None
        self.count = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        values = torch.stack(list(losses.values()))
        self.sums = values if self.sums is None else self.sums + values
        self.count += 1

    def read(self, names, world: distributed.World = distributed.World()) -> dict[str, float]:
        """The mean of each loss since the last read, over all ranks."""
        if self.count == 0:
            return {}
        values = world.mean(self.sums / self.count).tolist()
        self.sums, self.count = None, 0
        return dict(zip(names, values))


class StopRequest:
    """Ctrl-C or SIGTERM asks the loop to save and stop after the current step."""

    def __init__(self):
        self.signal: int | None = None

    def __enter__(self):
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def requested(self, world: distributed.World) -> bool:
        """Whether any rank was asked to stop; the ranks stop together, after the same step."""
        if world.any(self.signal is not None) and self.signal is None:
            self.signal = signal.SIGTERM  # another rank's request
        return self.signal is not None

    def handle(self, signum, frame) -> None:
        if self.signal is not None:
            # A second Ctrl-C: the user really wants out. SIGTERM, though, comes again and again from
            # schedulers and launchers (torchrun forwards the one it got): it never aborts the save.
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signal = signum
        log.warning("%s received: saving a checkpoint after this step, then stopping (again to abort)",
                    signal.Signals(signum).name)

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            # Once stopping for SIGTERM, the process is on its way out: a repeated one must not kill it
            # before it exits with its status (and its checkpoint is saved by now).
            signal.signal(s, signal.SIG_IGN if self.signal == signal.SIGTERM == s else handler)


class Trainer:
    def __init__(self, opt: argparse.Namespace):
        self.opt = opt
        self.world, self.device = distributed.setup(resolve_device(opt.device))
        self.run_dir = Path(opt.checkpoints_dir) / opt.name
        self.announce_unavailable_features()
        self.dataset = create_dataset(opt)  # bad folders fail here, before anything is built
        # One writer per run folder; under torchrun rank 0 writes for all. Taken before the folder is
        # read, so that a second run never sees a half-written state.
        self.lock = RunLock(self.run_dir).acquire() if self.world.is_main else None
        if self.world.is_main:
            for orphan in fileio.remove_orphans(self.run_dir):
                log.info("removed %s, left by an interrupted save", orphan)
        # Each rank its own random stream (dropout, pool choices); the weights are rank 0's, which
        # DDP broadcasts, and the data order and augmentation follow --seed alone.
        torch.manual_seed(opt.seed + self.world.rank)
        random.seed(opt.seed + self.world.rank)  # the image pool's choices without --cuda-graphs
        self.method = METHODS[opt.arch](opt, self.device)
        self.schedulers = {k: make_scheduler(o, opt) for k, o in self.method.optimizers.items()}
        self.step_fn = CudaGraphStep(self.method) if opt.cuda_graphs and self.device.type == "cuda" else self.method.step
        self.config = {k: v for k, v in vars(opt).items()}
        self.epoch, self.epoch_iter, self.step = opt.epoch_count, 0, 0
        latest = self.run_dir / LATEST
        self.last_good = "none (nothing was saved yet)"
        if opt.continue_train:
            state, latest = checkpoints.load_latest(self.run_dir, LATEST)
            checkpoints.check_resumable(state, self.config, latest)
            if not checkpoints.restore(state, self.method, self.schedulers, self.world.rank):
                torch.manual_seed(opt.seed + self.world.rank + state["step"])
                random.seed(opt.seed + self.world.rank + state["step"])
            saved_ranks = 1 + len(state.get("ranks", {}))
            if saved_ranks != self.world.world_size:
                log.warning("%s was written by %d process(es) and this run has %d: each rank resumes the random "
                            "stream and image pool saved for its rank, if any, and starts new ones otherwise",
                            latest, saved_ranks, self.world.world_size)
            self.epoch, self.epoch_iter, self.step = state["epoch"], state["epoch_iter"], state["step"]
            log.info("resumed %s at epoch %d, step %d", latest, self.epoch, self.step)
            self.last_good = f"{latest} (step {self.step})"
        elif latest.exists():
            raise RunExists(f"{self.run_dir} already holds a run ({LATEST}): pass --continue_train to resume "
                            "it, or choose another --name; nothing was overwritten")
        self.meter = LossMeter()
        self.guard = NonFiniteGuard(self.method.loss_names,
                                    [p for net in self.method.nets.values() for p in net.parameters()],
                                    self.device, self.step)
        # More loader processes than cores only slows the step down.
        self.num_workers = min(opt.num_threads, len(os.sched_getaffinity(0)))
        self.dali = self.make_dali() if resolve_loader(opt.loader, self.device) == "dali" else None
        self.record = (RunRecord(opt, self.run_dir, self.method.loss_names, self.config, self.device, self.step)
                       if self.world.is_main else None)
        if self.record is not None and opt.continue_train:
            # Rows an interrupted session logged after the checkpoint it resumes from would repeat.
            dropped = self.record.loss_log.drop_after(self.step)
            if dropped:
                log.info("dropped %d loss-log row(s) after step %d, logged after that checkpoint", dropped, self.step)

    def release(self) -> None:
        """Lets another run write to the run folder (the kernel does it too when the process ends)."""
        if self.lock is not None:
            self.lock.release()

    def make_dali(self) -> DaliLoader | None:
        """The DALI loader; with --loader auto, None (the torch loader) if DALI cannot start here."""
        opt = self.opt
        try:
            return DaliLoader(self.dataset, batch_size=opt.batch_size, shuffle=not opt.serial_batches, seed=opt.seed,
                              device=self.device, num_threads=self.num_workers, rank=self.world.rank,
                              world_size=self.world.world_size, channels_last=opt.channels_last)
        except Exception as e:
            if opt.loader == "dali":
                raise DaliUnavailable(f"--loader dali: DALI could not start on {self.device}: {e}; "
                                      "use --loader torch") from e
            log.warning("DALI could not start on %s (%s); loading with the torch loader", self.device, e)
            return None

    @property
    def last_epoch(self) -> int:
        return self.opt.epoch_count + self.opt.n_epochs + self.opt.n_epochs_decay - 1

    def announce_unavailable_features(self) -> None:
        problem = distributed.unsupported(self.world, self.device, self.opt)
        if problem:
            raise ValueError(problem)
        if self.opt.amp:
            log.info("mixed precision: %s autocast on %s%s", self.opt.amp, self.device.type,
                     ", with gradient scaling" if self.opt.amp == "fp16" else "")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # shapes are fixed within a run
            return
        if self.opt.cuda_graphs:
            log.warning("--cuda-graphs needs a CUDA device; training eagerly on %s", self.device)

    # -- the loop -------------------------------------------------------------------------------
    def train(self) -> None:
        try:
            self.train_loop()
        finally:
            self.release()

    def train_loop(self) -> None:
        opt = self.opt
        log.info("training %s on %s (%d samples) on %s with the %s loader; run folder %s", opt.arch, opt.dataroot,
                 len(self.dataset), self.device, "DALI" if self.dali else "torch", self.run_dir)
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
        log.info("training finished: %d epochs, %d steps; weights in %s", self.last_epoch - opt.epoch_count + 1,
                 self.step, self.run_dir)

    def finish_record(self, status: str) -> None:
        if self.record is not None:
            self.record.stopped(status)
            log.info("report: %s", self.run_dir / "index.html")
        # torchrun stops every process once one has ended: none may end while rank 0 still writes.
        self.world.barrier()

    def train_epoch(self, stop: StopRequest) -> str | None:
        """Runs the rest of the current epoch; says why when it stopped early."""
        opt = self.opt
        world = self.world
        total = math.ceil(math.ceil(len(self.dataset) / world.world_size) / opt.batch_size)
        bar = tqdm(total=total, initial=self.epoch_iter, desc=f"epoch {self.epoch}/{self.last_epoch}",
                   disable=opt.no_progress or not world.is_main, dynamic_ncols=True, leave=False)
        self.tick = self.epoch_start = (time.perf_counter(), self.step)
        self.epoch_G_loss = []
        with bar, self.profiler() as profiler:
            for batch in self.batches():
                losses = self.step_fn(batch)
                self.guard.check(losses)
                self.meter.add(losses)
                self.step += 1
                self.epoch_iter += 1
                bar.update()
                if profiler is not None:
                    profiler.step()
                if self.step % opt.print_freq == 0:
                    self.report(bar)
                if self.step % opt.save_latest_freq == 0:
                    self.save(LATEST)
                if stop.requested(world):
                    return "signal"
                if opt.max_steps and self.step >= opt.max_steps:
                    return f"reached --max_steps {opt.max_steps}"
                if profiler is not None and self.step >= self.profile_until:
                    return f"profiled steps {self.step - PROFILE_STEPS + 1}-{self.step} into {opt.profile}"
        return None

    def batches(self):
        """The rest of the current epoch's batches, on the device."""
        if self.dali is not None:  # DALI prefetches on its own, and can write into the graph's inputs
            out = self.step_fn.input_buffers if isinstance(self.step_fn, CudaGraphStep) else None
            return self.dali.epoch(self.epoch, self.epoch_iter, out=out)
        loader = create_loader(self.dataset, batch_size=self.opt.batch_size, shuffle=not self.opt.serial_batches,
                               num_workers=self.num_workers, seed=self.opt.seed, epoch=self.epoch,
                               start_batch=self.epoch_iter, rank=self.world.rank, world_size=self.world.world_size,
                               pin_memory=self.device.type == "cuda")
        return prefetch_to_device(loader, self.device, self.method.memory_format)

    def profiler(self):
        """A torch.profiler over a few steps after warm-up (CUDA graphs: after capture) with --profile."""
        if not self.opt.profile:
            return contextlib.nullcontext()
        warmup = 2 + (self.step_fn.warmup + 1 if isinstance(self.step_fn, CudaGraphStep) else 0)
        self.profile_until = self.step + warmup + PROFILE_STEPS
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        out = Path(self.opt.profile)
        out.mkdir(parents=True, exist_ok=True)

        def write(prof) -> None:
            prof.export_chrome_trace(str(out / f"trace_step{self.step}.json"))
            sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
            (out / "summary.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=40))

        return torch.profiler.profile(activities=activities, on_trace_ready=write,
                                      schedule=torch.profiler.schedule(wait=0, warmup=warmup, active=PROFILE_STEPS,
                                                                               repeat=1))

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
        return steps * self.opt.batch_size * self.world.world_size

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
        if epoch % self.opt.save_epoch_freq == 0 or epoch == self.last_epoch:
            self.save(f"epoch_{epoch:03d}.pt", label=str(epoch))

    def save(self, filename: str, label: str = "latest") -> None:
        """Full state as `filename` plus the networks in the original format; never saves NaNs."""
        self.report()  # raises NonFiniteLoss before anything is written
        # Every rank's random streams and pools go into rank 0's one file.
        ranks = self.world.gather(checkpoints.rank_state(self.method) if self.world.distributed else None)
        if not self.world.is_main:
            return
        state = checkpoints.training_state(self.method, self.schedulers, self.config, epoch=self.epoch,
                                           epoch_iter=self.epoch_iter, step=self.step,
                                           other_ranks={r: s for r, s in enumerate(ranks) if r > 0})
        checkpoints.atomic_save(state, self.run_dir / filename)
        checkpoints.export_original(self.method, self.run_dir, label)
        self.last_good = f"{self.run_dir / filename} (step {self.step})"


def train(opt: argparse.Namespace) -> Trainer:
    trainer = Trainer(opt)
    trainer.train()
    return trainer
