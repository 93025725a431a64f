"""Weights & Biases logging of a training run (--use_wandb), as the original release offers it: the
resolved configuration, the losses at each report, the epoch metrics and each epoch's sample grid,
under the same names and step numbers as the TensorBoard event files.

wandb's own environment decides where the run goes: WANDB_MODE=offline keeps it on disk (upload it
later with `wandb sync`), WANDB_DIR chooses the folder (default: the run folder), and WANDB_API_KEY
or `wandb login` the account. The wandb run's id is kept in the run folder, so that a run resumed
with --continue_train goes on logging to the same wandb run.
"""

from __future__ import annotations

import os
import secrets

import numpy as np

from pyi2i import fileio
from pyi2i.config import TrainConfig
from pyi2i.errors import UserError

ID_FILE = "wandb_id.txt"


def import_wandb():
    """The wandb module, or a UserError saying how to install it."""
    try:
        import wandb
    except ImportError as e:
        raise UserError(f"--use_wandb needs the wandb package ({e}): pip install \"pyi2i[wandb]\", or train "
                        "without --use_wandb") from None
    return wandb


class WandbLog:
    """A wandb run fed like TensorBoardLog: scalars by group, images, and close at the end."""

    def __init__(self, config: TrainConfig):
        """`config` is the resolved configuration; a resumed run (--continue_train) reuses the wandb
        run id saved in its folder, a new one starts a new wandb run."""
        self.wandb = import_wandb()
        id_file = config.run_dir / ID_FILE
        if config.run.continue_train and id_file.is_file():
            run_id = id_file.read_text().strip()
        else:
            run_id = secrets.token_hex(6)
            fileio.write_text(id_file, run_id + "\n")
        # On resuming, wandb keeps a step it already holds (one logged after the checkpoint that the
        # run resumes from) and drops the repeat with a warning; options the resumed run changes
        # (--max_steps, ...) replace the saved ones.
        try:
            self.run = self.wandb.init(project=config.run.wandb_project_name, name=config.run.name, id=run_id,
                                       resume="allow", config=config.flat(), allow_val_change=True,
                                       dir=None if "WANDB_DIR" in os.environ else config.run_dir)
        except self.wandb.errors.Error as e:
            reason = str(e).rstrip(".")
            raise UserError(f"--use_wandb: wandb could not start a run: {reason}. Log in with `wandb login` (or set "
                            "WANDB_API_KEY), or set WANDB_MODE=offline to log to disk and `wandb sync` later") from e

    def scalars(self, group: str, values: dict[str, float], step: int) -> None:
        self.run.log({f"{group}/{name}": value for name, value in values.items()}, step=step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """image: (H, W, 3) uint8."""
        self.run.log({tag: self.wandb.Image(image)}, step=step)

    def flush(self) -> None:
        """wandb sends in the background; nothing to wait for."""

    def close(self) -> None:
        self.run.finish()
