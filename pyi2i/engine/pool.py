"""The image pool of CycleGAN (Shrivastava et al.): D sees a history of generated images."""

from __future__ import annotations

import torch


class ImagePool:
    """Per image: while the pool is not full, store it and return it; once full, with probability
    0.5 return a stored image (chosen uniformly) and put the new one in its place, else return the
    new one. `size` 0 passes images through.

    The original release keeps a Python list and draws with Python's `random`; here the images
    live in one preallocated buffer on their device, the fill count is a device tensor, and the
    choices are drawn on the device and applied without branching, so `query` never synchronises
    with the host and can be captured in a CUDA graph. Its draws come from the device's global
    generator, whose state the checkpoints keep.
    """

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
        elif self.buffer.shape[1:] != images.shape[1:] or self.buffer.dtype != images.dtype:
            raise ValueError(f"image pool holds {self.buffer.dtype} images of shape {tuple(self.buffer.shape[1:])}, "
                             f"got {images.dtype} {tuple(images.shape[1:])}: keep --crop_size fixed during a run")
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

    def state_dict(self) -> dict:
        if self.buffer is None:
            return {"size": self.size, "count": 0, "images": None}
        count = int(self.count)
        return {"size": self.size, "count": count, "images": self.buffer[:count].cpu().clone()}

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
