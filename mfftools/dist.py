"""torch.distributed set-up shared by training and evaluation.

Reads torchrun's RANK / LOCAL_RANK / WORLD_SIZE; without them everything runs as a single
process (rank 0 of 1). Only rank 0 writes files and shows progress.
"""
import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self):
        """True on the process that writes files and logs progress."""
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def info_from_env():
    """The process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def init(device_type="cpu", timeout_minutes=30):
    """Join the process group when launched by torchrun: NCCL for CUDA, gloo for CPU.

    Returns the DistInfo; a single process needs no process group.
    """
    info = info_from_env()
    if info.distributed and not torch_dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        torch_dist.init_process_group(
            backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes)
        )
        logger.info("rank %d/%d joined (%s)", info.rank, info.world_size, backend)
    return info


def shutdown():
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def resolve_device(requested="auto", local_rank=0):
    """`auto` -> cuda:LOCAL_RANK when CUDA is available, else cpu; `cuda` without CUDA is an error.

    `requested` may also be a torch.device (returned as it is, once checked).
    """
    requested = str(requested)
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MfftoolsError("--device cuda was asked for, but CUDA is not available here")
        return torch.device("cuda", local_rank) if requested == "cuda" else torch.device(requested)
    if requested != "cpu":
        raise MfftoolsError(f"unknown device {requested!r}: use auto, cpu or cuda")
    return torch.device("cpu")


def broadcast_object(info, value):
    """The main process's `value`, on every process (`value` itself without a process group)."""
    if not info.distributed:
        return value
    objects = [value]
    torch_dist.broadcast_object_list(objects, src=0)
    return objects[0]


def run_on_main(info, function):
    """`function()` on the main process alone, its failure shared with the others.

    Every process raises when it fails (the others a MfftoolsError with its message), so that
    none waits for the main process in a collective it will never reach. Returns what `function`
    returned on the main process, None elsewhere.
    """
    result, failure, message = None, None, None
    if info.is_main:
        try:
            result = function()
        except BaseException as error:  # shared first, re-raised as it is below
            failure = error
            message = str(error) if isinstance(error, MfftoolsError) else (
                f"the main process stopped: {type(error).__name__}: {error}")
    message = broadcast_object(info, message)
    if failure is not None:
        raise failure
    if message is not None:
        raise MfftoolsError(message)
    return result


def wait_group(info, seconds):
    """A gloo process group whose barrier waits up to `seconds` (None without a process group):
    for the other processes to wait on work the main process does alone, which may outlast the
    default group's timeout."""
    if not info.distributed:
        return None
    return torch_dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=seconds))
