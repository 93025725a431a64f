"""The running means of the step's losses, kept on the device between reports."""

from __future__ import annotations

import torch

from pyi2i.engine import distributed


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
