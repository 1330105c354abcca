"""Training checkpoints: one dict per file, written atomically, read safely.

A checkpoint holds `model` (the backbone's state_dict, the part `mfftools extract` needs),
`head`, `optimizer`, `scheduler`, `scaler`, `epoch` (epochs completed), `step`, `config`
(the resolved training configuration), `arch`, `model_type` ("mixfair" or "iresnet"),
`head_type`, `num_classes`, `group_names`, `preprocessing` (the network's input), `world_size`,
`global_batch`, `pretrained`, `best` and `mfftools_version`; checkpoints of older versions lack
some of them.
It is written to a temporary name in the same folder and moved into place with os.replace,
so a crash while saving never leaves a truncated file under the real name. It is read as model
files are (`torch.load(weights_only=True)`): a file holding other pickled objects is refused.
"""
import logging
import re
from pathlib import Path

import torch

from mfftools.errors import MfftoolsError
from mfftools.files import atomic_output

logger = logging.getLogger(__name__)

_EPOCH_NAME = re.compile(r"^epoch_(\d+)\.pt$")


def epoch_checkpoint_path(folder, epoch):
    return Path(folder) / f"epoch_{epoch:04d}.pt"


def save_checkpoint(state, path):
    """Write `state` to `path` atomically (temporary file + os.replace)."""
    with atomic_output(path) as temporary:
        torch.save(state, temporary)
    logger.debug("saved %s", path)


def load_checkpoint(path):
    """The checkpoint dict at `path`, loaded on the CPU, weights only."""
    from mfftools.models.loading import load_weights

    path = Path(path)
    if not path.is_file():
        raise MfftoolsError(f"checkpoint {path} does not exist")
    state = load_weights(path)
    if not isinstance(state, dict):
        raise MfftoolsError(f"checkpoint {path} is not a training checkpoint (it holds a "
                            f"{type(state).__name__}, not a dict)")
    missing = [key for key in ("model", "head", "optimizer", "epoch", "step", "config") if key not in state]
    if missing:
        raise MfftoolsError(f"checkpoint {path} is not a training checkpoint (missing {', '.join(missing)})")
    return state


def epoch_checkpoints(folder):
    """Epoch checkpoints in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _EPOCH_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def newest_checkpoint(folder):
    """The newest epoch checkpoint in `folder`, or None."""
    checkpoints = epoch_checkpoints(folder)
    return checkpoints[-1] if checkpoints else None


def prune_checkpoints(folder, keep):
    """Delete all but the `keep` newest epoch checkpoints."""
    for path in epoch_checkpoints(folder)[:-keep]:
        path.unlink()
