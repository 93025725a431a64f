"""The whole training iteration as one CUDA graph, and batches copied to the GPU ahead of use.

At batch 1 a CycleGAN iteration launches about 2,000 kernels, so eager mode is bound by the CPU's
launch rate. Captured once, an iteration is one `replay()`: no Python, no host synchronisation.

What makes `Method.step` capturable: the image pool keeps its state and random choices on the
device; Adam is fused and capturable, with the learning rate in a device tensor that the schedule
fills in place; dropout and the pool draw from the device generator, whose Philox offsets graphs
advance on every replay; losses stay on the device. Inputs are copied into static buffers that
the graph reads.

The first `warmup` iterations of each input shape run eagerly on a side stream: they are real
training steps (on the real batches), and they create what capture cannot (optimizer state,
cuDNN plans, the pool's buffer). The next batch of that shape is captured and then replayed; a
shape seen fewer times (the last, short batch of an epoch) keeps running eagerly. So a run with
graphs computes the same sequence of updates as one without.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch

from pyi2i.engine.method import Method


def check_graphable(method: Method) -> str | None:
    """Why `method` cannot run under --cuda-graphs, or None."""
    if method.device.type != "cuda":
        return f"CUDA graphs need a CUDA device, the run is on {method.device}"
    if method.scaler is not None:
        return "--amp fp16 needs a gradient scaler, which checks for infs on the host every step; use --amp bf16"
    if method.opt.compile:
        return "--compile and --cuda-graphs are alternatives; choose one"
    return None


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: dict[str, torch.Tensor]  # static input buffers the graph reads
    losses: dict[str, torch.Tensor]  # static loss tensors the graph writes
    visuals: dict[str, torch.Tensor | None]


@dataclass
class CudaGraphStep:
    """Callable like `method.step(batch)`, replaying a captured graph per input shape."""

    method: Method
    warmup: int = 3
    graphs: dict[tuple, _Captured] = field(default_factory=dict)
    seen: dict[tuple, int] = field(default_factory=dict)
    side_stream: torch.cuda.Stream | None = None
    pool: tuple | None = None  # one memory pool shared by all captured shapes
    buffers: dict[tuple, dict[str, torch.Tensor]] = field(default_factory=dict)  # static inputs per shape

    def __post_init__(self):
        reason = check_graphable(self.method)
        if reason:
            raise ValueError(f"--cuda-graphs: {reason}")
        self.side_stream = torch.cuda.Stream(self.method.device)

    @staticmethod
    def shape_key(batch: dict) -> tuple:
        return tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(batch.items()) if torch.is_tensor(v))

    def input_buffers(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        """The static input tensors of the graph for float32 batches of `shapes`, for a loader to
        write the next batch straight into: replaying then copies nothing. Stream order keeps this
        safe: the loader writes on the current stream, after the previous step's work."""
        key = tuple((k, tuple(s), torch.float32) for k, s in sorted(shapes.items()))
        if key not in self.buffers:
            self.buffers[key] = {k: torch.empty(s, device=self.method.device, memory_format=self.method.memory_format)
                                 for k, s in shapes.items()}
        return self.buffers[key]

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        key = self.shape_key(batch)
        captured = self.graphs.get(key)
        if captured is None:
            count = self.seen[key] = self.seen.get(key, 0) + 1
            if count <= self.warmup:
                return self._eager(batch)
            captured = self.graphs[key] = self._capture(batch)
        for name, static in captured.inputs.items():
            if batch[name] is not static:
                static.copy_(batch[name], non_blocking=True)
        captured.graph.replay()
        self.method.visuals = captured.visuals
        return captured.losses

    def _eager(self, batch: dict) -> dict[str, torch.Tensor]:
        current = torch.cuda.current_stream(self.method.device)
        self.side_stream.wait_stream(current)
        with torch.cuda.stream(self.side_stream):
            losses = self.method.step(batch)
        current.wait_stream(self.side_stream)
        return losses

    def _capture(self, batch: dict) -> _Captured:
        device = self.method.device
        inputs = self.buffers.get(self.shape_key(batch)) or {
            k: torch.empty_like(v, device=device) for k, v in batch.items() if torch.is_tensor(v)}
        torch.cuda.synchronize(device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            losses = self.method.step({**batch, **inputs})
            visuals = dict(self.method.visuals)
        self.pool = graph.pool()
        return _Captured(graph, inputs, losses, visuals)


def prefetch_to_device(batches: Iterable[dict], device: torch.device,
                       memory_format: torch.memory_format = torch.contiguous_format) -> Iterator[dict]:
    """Yields the batches on `device`, the copy of each next batch running on a side stream while
    the current one is being used (the loader should pin memory for the copies to be asynchronous)."""
    if device.type != "cuda":
        yield from batches
        return
    stream = torch.cuda.Stream(device)

    def stage(batch: dict) -> dict:
        with torch.cuda.stream(stream):
            return {k: v.to(device, memory_format=memory_format, non_blocking=True) if torch.is_tensor(v) else v
                    for k, v in batch.items()}

    def hand_over(batch: dict) -> dict:
        current = torch.cuda.current_stream(device)
        current.wait_stream(stream)
        for v in batch.values():
            if torch.is_tensor(v):
                v.record_stream(current)  # freed only after the consuming stream is done with it
        return batch

    iterator = iter(batches)
    try:
        ahead = stage(next(iterator))
    except StopIteration:
        return
    for batch in iterator:
        current = hand_over(ahead)
        ahead = stage(batch)
        yield current
    yield hand_over(ahead)
