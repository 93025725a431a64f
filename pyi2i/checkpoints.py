"""Training checkpoints (the full state, to resume bit-exactly) and weights in the original format.

Every file is written to a temporary name beside its destination and renamed over it, so a crash
or a full disk never leaves a half-written checkpoint, and the previous one stays until the new one
is complete. Each carries a checksum record (pyi2i.integrity) that is verified when it is loaded.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import torch

from pyi2i import integrity
from pyi2i.errors import UserError
from pyi2i.models.original_format import IncompatibleCheckpoint, from_original, to_original

log = logging.getLogger("pyi2i")

FORMAT = "pyi2i-train"
VERSION = 1
# Options that fix the networks' shapes: a checkpoint only resumes under the same values.
ARCHITECTURE_KEYS = ("arch", "netG", "netD", "n_layers_D", "ngf", "ndf", "norm", "input_nc", "output_nc", "no_dropout")


class MissingCheckpoint(UserError, FileNotFoundError):
    """A checkpoint or weights file that should be there is not."""


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save to `path` through a temporary file in the same folder and an atomic rename, with
    its checksum record."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    integrity.save_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike) -> dict:
    """A checkpoint's contents, on the CPU, after checking it against its checksum record; clear
    errors for missing, corrupt or unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpoint(f"checkpoint {path} does not exist")
    integrity.verify(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise IncompatibleCheckpoint(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e}); "
                                     "it may be truncated or corrupt") from e


def load_latest(run_dir: Path, latest: str) -> tuple[dict, Path]:
    """The newest checkpoint of a run that loads: `latest`, else the numbered epoch checkpoints from
    the newest down, saying so. Raises the error of `latest` when none loads."""
    candidates = [run_dir / latest] + sorted(run_dir.glob("epoch_*.pt"), reverse=True)
    first_error = None
    for path in candidates:
        try:
            state = load(path)
        except (integrity.CorruptFile, IncompatibleCheckpoint, MissingCheckpoint) as e:
            first_error = first_error or e
            if path.exists():
                log.warning("cannot resume from %s: %s", path, e)
            continue
        if path != candidates[0]:
            log.warning("falling back to the previous good checkpoint %s (epoch %s, step %s)", path,
                        state.get("epoch"), state.get("step"))
        return state, path
    raise first_error


def training_file(label: str) -> str:
    """The training checkpoint of a label: latest.pt, epoch_NNN.pt for an epoch number, else LABEL.pt
    (iter_N.pt). The original-format weights of the same save are LABEL_net_NAME.pth."""
    if label == "latest":
        return "latest.pt"
    return f"epoch_{int(label):03d}.pt" if label.isdigit() else f"{label}.pt"


def check_resumable(state: dict, config: dict, path: Path) -> None:
    if state.get("format") != FORMAT:
        raise IncompatibleCheckpoint(f"{path} is not a pyi2i training checkpoint (no '{FORMAT}' marker); "
                                     "original-release *_net_*.pth files hold weights only")
    saved = state["config"]
    for key in ARCHITECTURE_KEYS:
        if saved.get(key) != config.get(key):
            raise IncompatibleCheckpoint(
                f"{path} was trained with --{key} {saved.get(key)} but this run has --{key} {config.get(key)}; "
                f"resume with the same value (or start a new run with another --name)")


def rng_state(device: torch.device) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def set_rng_state(rng: dict, device: torch.device) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def training_state(method, schedulers: dict, config: dict, *, epoch: int, epoch_iter: int, step: int,
                   other_ranks: dict | None = None) -> dict:
    """Everything needed to continue training exactly where it stopped. In a distributed run the
    state is rank 0's, and `other_ranks` holds each other rank's rank_state."""
    state = {
        "format": FORMAT, "version": VERSION, "config": config,
        "epoch": epoch, "epoch_iter": epoch_iter, "step": step,
        "method": method.state_dict(),
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "rng": rng_state(method.device),
    }
    if other_ranks:
        state["ranks"] = other_ranks
    return state


def rank_state(method) -> dict:
    """What differs between the ranks of a distributed run: random streams and image pools."""
    return {"rng": rng_state(method.device), "pools": {k: p.state_dict() for k, p in method.pools().items()}}


def restore(state: dict, method, schedulers: dict, rank: int = 0) -> bool:
    """Loads `state` into the method and schedulers; False when it holds no state of its own for
    `rank` (a run resumed on more processes than it was saved from)."""
    method.load_state_dict(state["method"])
    for k, s in schedulers.items():
        s.load_state_dict(state["schedulers"][k])
    if rank == 0:
        set_rng_state(state["rng"], method.device)
        return True
    own = state.get("ranks", {}).get(rank)
    if own is None:
        return False
    set_rng_state(own["rng"], method.device)
    for k, pool in method.pools().items():
        pool.load_state_dict(own["pools"][k], method.device)
    return True


def export_original(method, run_dir: Path, label: str) -> list[Path]:
    """Each network as `<label>_net_<name>.pth` in the original release's key layout."""
    paths = []
    for name, net in method.nets.items():
        path = run_dir / f"{label}_net_{name}.pth"
        atomic_save({k: v.detach().cpu().clone() for k, v in to_original(net).items()}, path)
        paths.append(path)
    return paths


def load_original(net: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load an original-format weights file (e.g. `latest_net_G_A.pth`) into `net`."""
    state = load(path)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        if isinstance(state, dict) and state.get("format") == FORMAT:
            raise IncompatibleCheckpoint(f"{path} is a pyi2i training checkpoint, not a weights file: "
                                         "pass it where a training checkpoint is expected")
        raise IncompatibleCheckpoint(f"{path} does not hold a state dict of tensors")
    from_original(net, state, source=str(path))
