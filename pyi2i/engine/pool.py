"""The image pool of CycleGAN (Shrivastava et al.): D sees a history of generated images."""

from __future__ import annotations

import torch


class ImagePool:
    """Per image: while the pool is not full, store it and return it; once full, with probability
    0.5 return a stored image (chosen uniformly) and put the new one in its place, else return the
    new one. `size` 0 passes images through.

    The images live in one preallocated buffer on their device; the choices come from a seeded
    generator of the pool's own, so a run (and a resumed run) is reproducible.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.count = 0
        self.buffer: torch.Tensor | None = None  # (size, C, H, W), allocated on first use
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) -> (N, C, H, W), detached."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.buffer is None or self.buffer.shape[1:] != images.shape[1:]:
            if self.count:
                raise ValueError(f"image pool holds images of shape {tuple(self.buffer.shape[1:])}, "
                                 f"got {tuple(images.shape[1:])}: keep --crop_size fixed during a run")
            self.buffer = images.new_empty((self.size, *images.shape[1:]))
        out = []
        for image in images:
            if self.count < self.size:
                self.buffer[self.count] = image
                self.count += 1
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                index = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.buffer[index].clone())
                self.buffer[index] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        stored = None if self.buffer is None else self.buffer[: self.count].cpu().clone()
        return {"size": self.size, "count": self.count, "images": stored, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size, self.count = state["size"], state["count"]
        self.generator.set_state(state["generator"])
        stored = state["images"]
        self.buffer = None
        if stored is not None:
            self.buffer = stored.new_empty((self.size, *stored.shape[1:]), device=device)
            self.buffer[: self.count] = stored.to(device)
