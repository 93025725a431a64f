"""The whole training iteration as one CUDA graph, and batches copied to the GPU ahead of use.

At batch 1 a CycleGAN iteration launches about 2,000 kernels, so eager mode is bound by the CPU's
launch rate. Captured once, an iteration is one `replay()`: no Python, no host synchronisation.

What makes `Method.step` capturable: with --cuda-graphs the image pool (`DevicePool`) keeps its state and random choices on the
device; Adam is fused and capturable, with the learning rate in a device tensor that the schedule
fills in place; dropout and the pool draw from the device generator, whose Philox offsets graphs
advance on every replay; losses stay on the device. Inputs are copied into static buffers that
the graph reads.

The first `warmup` iterations of each input shape run eagerly (on a side stream on a GPU): they are
real training steps (on the real batches), and they create what capture cannot (optimizer state,
cuDNN plans, the pool's buffer). The next batch of that shape is captured and then replayed; a
shape seen fewer times (the last, short batch of an epoch) keeps running eagerly. So a run with
graphs computes the same sequence of updates as one without.

Only `CudaGraph` (capture and replay) is tied to the device. On other devices `StandInGraph` takes
its place: replaying calls the captured function on the static inputs and writes its results into
the static outputs, as a graph does. So the CPU tests run the function that a GPU captures, with
the same buffers, warm-up and bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

import torch

from pyi2i.engine.method import Method

T = TypeVar("T")


def check_graphable(method: Method) -> str | None:
    """Why `method` cannot run under --cuda-graphs, or None."""
    if method.scaler is not None:
        return "--amp fp16 needs a gradient scaler, which checks for infs on the host every step; use --amp bf16"
    if method.speed.compile:
        return "--compile and --cuda-graphs are alternatives; choose one"
    return None


class CudaGraph:
    """Capture and replay on a CUDA device; all captured shapes share one memory pool."""

    def __init__(self, device: torch.device):
        self.device = device
        self.side_stream: torch.cuda.Stream | None = None
        self.pool: tuple | None = None

    def eager(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on a side stream: capture needs its warm-up off the default stream."""
        if self.side_stream is None:
            self.side_stream = torch.cuda.Stream(self.device)
        current = torch.cuda.current_stream(self.device)
        self.side_stream.wait_stream(current)
        with torch.cuda.stream(self.side_stream):
            out = fn()
        current.wait_stream(self.side_stream)
        return out

    def capture(self, fn: Callable[[], T]) -> tuple[Callable[[], None], T]:
        """(replay, the outputs each replay writes); capturing runs nothing."""
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the DALI, TensorBoard and pin-memory threads may call CUDA during the capture
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            outputs = fn()
        self.pool = graph.pool()
        return graph.replay, outputs


class StandInGraph:
    """A CUDA graph's contract on a device without graphs: capturing runs nothing, and each replay
    runs the captured function and writes its results into the same output tensors."""

    def eager(self, fn: Callable[[], T]) -> T:
        return fn()

    def capture(self, fn: Callable[[], dict]) -> tuple[Callable[[], None], dict]:
        outputs: dict = {}

        def replay() -> None:
            if outputs:
                _copy_into(outputs, fn())
            else:  # the first replay allocates the static outputs, as the capture does on a GPU
                outputs.update(fn())
        return replay, outputs


def _copy_into(static: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict):
            _copy_into(static[key], value)
        elif torch.is_tensor(value):
            static[key].copy_(value)


@dataclass
class _Captured:
    replay: Callable[[], None]
    inputs: dict[str, torch.Tensor]  # static input buffers the graph reads
    outputs: dict  # {"losses": static loss tensors, "visuals": static images}, written by each replay


@dataclass
class CudaGraphStep:
    """Callable like `method.step(batch)`, replaying a captured graph per input shape: on a CUDA
    device a CUDA graph, elsewhere its stand-in (see the module's description)."""

    method: Method
    warmup: int = 3
    graphs: dict[tuple, _Captured] = field(default_factory=dict)
    seen: dict[tuple, int] = field(default_factory=dict)
    buffers: dict[tuple, dict[str, torch.Tensor]] = field(default_factory=dict)  # static inputs per shape

    def __post_init__(self):
        reason = check_graphable(self.method)
        if reason:
            raise ValueError(f"--cuda-graphs: {reason}")
        self.device_graph = CudaGraph(self.method.device) if self.method.device.type == "cuda" else StandInGraph()

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
                return self.device_graph.eager(lambda: self.method.step(batch))
            captured = self.graphs[key] = self._capture(batch)
        for name, static in captured.inputs.items():
            if batch[name] is not static:
                static.copy_(batch[name], non_blocking=True)
        captured.replay()
        self.method.visuals = captured.outputs["visuals"]
        return captured.outputs["losses"]

    def _capture(self, batch: dict) -> _Captured:
        device = self.method.device
        inputs = self.buffers.get(self.shape_key(batch)) or {
            k: torch.empty_like(v, device=device) for k, v in batch.items() if torch.is_tensor(v)}

        def step() -> dict:  # what the graph holds: one training step on the static inputs
            losses = self.method.step({**batch, **inputs})
            return {"losses": losses, "visuals": dict(self.method.visuals)}
        replay, outputs = self.device_graph.capture(step)
        return _Captured(replay, inputs, outputs)


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


class GraphedForward:
    """`fn(x) -> tensor` (an inference forward pass) replayed from a graph per input shape: the first
    `warmup` calls of a shape run eagerly (cuDNN picks its algorithms, memory settles), the next is
    captured, and later calls copy x into the graph's static input and replay. Off CUDA the
    stand-in runs the same logic. Results are returned as new tensors, so a caller may keep one
    while the next call replays."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device, warmup: int = 2):
        self.fn = fn
        self.warmup = warmup
        self.device_graph = CudaGraph(device) if device.type == "cuda" else StandInGraph()
        self.seen: dict[tuple, int] = {}
        self.graphs: dict[tuple, tuple[torch.Tensor, Callable[[], None], dict]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.stride())
        if key not in self.graphs:
            count = self.seen[key] = self.seen.get(key, 0) + 1
            if count <= self.warmup:
                return self.device_graph.eager(lambda: self.fn(x))
            static = x.clone()
            self.graphs[key] = (static, *self.device_graph.capture(lambda: {"y": self.fn(static)}))
        static, replay, outputs = self.graphs[key]
        static.copy_(x)
        replay()
        return outputs["y"].clone()
