"""The image pool of CycleGAN (Shrivastava et al.): D sees a history of generated images.

Per image: while the pool is not full, store it and return it; once full, with probability 0.5
return a stored image (chosen uniformly) and put the new one in its place, else return the new one.
A pool of size 0 passes images through.

Two implementations of that rule, with one interface (`query`, `state_dict`, `load_state_dict`)
and one checkpoint format, chosen where the method is built (`make_pool`):

- `HostPool` draws with Python's `random` exactly as the original release does (the same calls in
  the same order), so an eager run reproduces the original loop bit for bit, pool included.
- `DevicePool` keeps its images, fill count and random choices on the device and applies them
  without branching: `query` never synchronises with the host and can be captured in a CUDA graph.
  It draws from the device's generator, so its choices differ from the original's, but follow the
  same distribution.
"""

from __future__ import annotations

import random

import torch


def make_pool(size: int, on_device: bool) -> HostPool | DevicePool:
    """The device pool for a step captured in a CUDA graph (`on_device`), else the original's."""
    return DevicePool(size) if on_device else HostPool(size)


def _check_shape(stored: torch.Tensor, images: torch.Tensor) -> None:
    if stored.shape[1:] != images.shape[1:] or stored.dtype != images.dtype:
        raise ValueError(f"image pool holds {stored.dtype} images of shape {tuple(stored.shape[1:])}, "
                         f"got {images.dtype} {tuple(images.shape[1:])}: keep --crop_size fixed during a run")


class HostPool:
    """The original release's pool: a list of images, choices drawn with Python's `random`.

    Python's generator is global, so its state goes into the checkpoint with the pool: a resumed run
    (on each rank) draws what an uninterrupted one would have."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []  # each (1, C, H, W)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) -> (N, C, H, W), detached."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images:
            _check_shape(self.images[0], images)
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def stored(self) -> torch.Tensor | None:
        """The images held, (count, C, H, W), or None while empty."""
        return torch.cat(self.images) if self.images else None

    def state_dict(self) -> dict:
        stored = self.stored()
        return {"size": self.size, "count": len(self.images),
                "images": None if stored is None else stored.cpu().clone(), "random": random.getstate()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = state["size"]
        stored = state["images"]
        self.images = [] if stored is None else list(stored.to(device).split(1))
        if state.get("random") is not None:  # absent from a device pool's state
            random.setstate(_as_random_state(state["random"]))


def _as_random_state(state) -> tuple:
    """random.setstate's tuple from a checkpoint, which may hold lists where it held tuples."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


class DevicePool:
    """The pool on the device: one preallocated buffer, the fill count a device tensor, the choices
    drawn on the device (from its global generator, whose state the checkpoints keep)."""

    def __init__(self, size: int):
        self.size = size
        self.buffer: torch.Tensor | None = None  # (size, C, H, W), allocated on first use
        self.count: torch.Tensor | None = None  # () int64: images stored so far, at most size

    def _allocate(self, like: torch.Tensor) -> None:
        self.buffer = like.new_zeros((self.size, *like.shape[1:]))
        self.count = torch.zeros((), dtype=torch.long, device=like.device)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) -> (N, C, H, W), detached."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.buffer is None:
            self._allocate(images)
        _check_shape(self.buffer, images)
        out = []
        for image in images:
            full = self.count >= self.size
            swap = full & (torch.rand((), device=image.device) > 0.5)
            slot = torch.where(full, torch.randint(self.size, (), device=image.device), self.count.clamp(max=self.size - 1))
            stored = self.buffer.index_select(0, slot.view(1))[0]
            # filling: write the image at `count`; swapping: write it over the returned one; else keep
            self.buffer.index_copy_(0, slot.view(1), torch.where(full & ~swap, stored, image)[None])
            out.append(torch.where(swap, stored, image))
            self.count += (~full).long()
        return torch.stack(out)

    def stored(self) -> torch.Tensor | None:
        """The images held, (count, C, H, W), or None while empty (reads the count: a host sync)."""
        count = 0 if self.count is None else int(self.count)
        return self.buffer[:count] if count else None

    def state_dict(self) -> dict:
        stored = self.stored()
        return {"size": self.size, "count": 0 if stored is None else len(stored),
                "images": None if stored is None else stored.cpu().clone(), "random": None}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = state["size"]
        stored = state["images"]
        if stored is None:
            self.buffer = self.count = None
            return
        if self.buffer is None or self.buffer.shape[1:] != stored.shape[1:] or self.buffer.device != torch.device(device):
            self._allocate(stored.new_empty((1, *stored.shape[1:]), device=device))
        # in place, so a captured CUDA graph keeps pointing at the same memory
        self.buffer.zero_()
        self.buffer[: state["count"]] = stored.to(device)
        self.count.fill_(state["count"])
