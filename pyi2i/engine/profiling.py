"""--profile: a torch.profiler trace of a few training steps after warm-up, then the run stops."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

PROFILE_STEPS = 5


class StepProfiler:
    """Profiles PROFILE_STEPS steps after `warmup` steps into `folder` (a Chrome trace and a
    summary table); with no folder, profiles nothing."""

    def __init__(self, folder: str | None, device: torch.device):
        self.folder = Path(folder) if folder else None
        self.device = device
        self.until: int | None = None  # the last profiled step, once started

    def session(self, step: int, warmup: int):
        """The profiler context from `step` on, or a null context without a folder."""
        if self.folder is None:
            return contextlib.nullcontext()
        self.until = step + warmup + PROFILE_STEPS
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self.folder.mkdir(parents=True, exist_ok=True)
        return torch.profiler.profile(activities=activities, on_trace_ready=self.write,
                                      schedule=torch.profiler.schedule(wait=0, warmup=warmup, active=PROFILE_STEPS,
                                                                       repeat=1))

    def done(self, step: int) -> str | None:
        """Why to stop after `step`, once the profiled steps are done."""
        if self.until is None or step < self.until:
            return None
        return f"profiled steps {step - PROFILE_STEPS + 1}-{step} into {self.folder}"

    def write(self, prof) -> None:
        prof.export_chrome_trace(str(self.folder / f"trace_step{prof.step_num}.json"))
        sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        (self.folder / "summary.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=40))
