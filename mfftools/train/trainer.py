"""The training loop: one process, or one per GPU/CPU slot under torchrun (DDP).

Each process reads its shard of every epoch (DistributedSampler, reshuffled per epoch from the
seed), draws its flips and MixFair partners from a generator reseeded per epoch, and averages
gradients with the others (NCCL on GPUs, gloo on CPUs). After every epoch the main process
evaluates when due (every process shares the instance and 1:N scoring) and writes an atomic
checkpoint; `resume="auto"` continues from the newest one and reproduces the uninterrupted run's
numbers, on as many processes as before. As in the paper's code, the MixFair partners and the
CIFP margin are drawn within each process's own batch.

Everything that can be checked is checked before anything is written: a run refused before its
first step leaves no file behind (a new run folder is not even created).
"""
import itertools
import logging
import sys
import time
from pathlib import Path

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from mfftools import __version__, dist
from mfftools.errors import MfftoolsError
from mfftools.train.checkpoint import (
    epoch_checkpoint_path,
    load_checkpoint,
    newest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from mfftools.train.config import RUN_CONFIG, config_from_dict, validate
from mfftools.train.data import open_training_data, preprocessing_record, training_preprocessing
from mfftools.train.evaluation import BestTracker, Validation, shared_results
from mfftools.train.metrics import HeldMessages, RunLog, format_value
from mfftools.train.pretrained import load_pretrained
from mfftools.train.step import (
    DROPOUT_STREAM,
    LOADER_STREAM,
    BatchRandomness,
    TrainingModule,
    build_network,
    parameter_groups,
    stream_seed,
)

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT = "best.pt"
EVAL_DIR = "eval"
# Keys that may differ between a checkpoint's config and the config that resumes it: they move
# files or change how the run is watched, not what it computes (the initial weights of
# `model.pretrained` are no longer read once there is a checkpoint).
_RESUMABLE_CHANGES = (
    "data.train", "data.image_root", "data.in_memory", "data.workers", "device", "log_every",
    "keep_checkpoints", "optim.epochs", "eval.", "model.pretrained",
)


def resolve_resume(run_dir, resume):
    """The checkpoint to continue from: None (fresh run), the newest ("auto") or a given path."""
    newest = newest_checkpoint(Path(run_dir) / CHECKPOINT_DIR)
    if resume is None:
        if newest is not None:
            raise MfftoolsError(
                f"{run_dir} already holds checkpoints: pass --resume auto to continue that run, "
                "or choose another --out"
            )
        return None
    if resume == "auto":
        if newest is None:
            raise MfftoolsError(
                f"--resume auto: {Path(run_dir) / CHECKPOINT_DIR} holds no checkpoint to continue "
                "from; leave out --resume to start the run afresh"
            )
        return newest
    return Path(resume)


def _flatten(values, prefix=""):
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def check_resumable(saved_config, config, path):
    """Refuse to resume when the config changes what the run computes. Keys the checkpoint's
    config lacks (it predates them) take their defaults."""
    saved = _flatten(config_from_dict(saved_config, f"the config of {path}").to_dict())
    current = _flatten(config.to_dict())
    changed = [
        key for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key) and not key.startswith(_RESUMABLE_CHANGES)
    ]
    if changed:
        details = ", ".join(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in changed)
        raise MfftoolsError(f"cannot resume from {path}: the config changed ({details})")


def check_world_size(state, path, info, batch_size, allow_change):
    """Refuse to resume on another number of processes than the checkpoint's, unless allowed:
    the global batch would change at the same learning rate, and so would the data order."""
    saved = state.get("world_size")
    global_batch = batch_size * info.world_size
    if saved is None:
        logger.warning("%s does not record how many processes trained it; resuming on %d "
                       "(global batch %d)", path, info.world_size, global_batch)
        return
    if saved == info.world_size:
        return
    change = (f"it was trained on {saved} process{'es' if saved > 1 else ''} (global batch "
              f"{state.get('global_batch', saved * batch_size)}), this run has {info.world_size} "
              f"(global batch {global_batch}) at the same learning rate, and the data order "
              "differs from the uninterrupted run's")
    if not allow_change:
        raise MfftoolsError(f"cannot resume from {path}: {change}; resume on {saved} "
                            "processes, or pass --allow-world-size-change to continue so")
    logger.warning("resuming from %s on another number of processes: %s", path, change)


def optimisation_step(model, optimizer, scaler, images, labels, permutation, amp):
    """Forward (autocast when `amp`), scaled backward, optimizer step; returns the detached loss."""
    with torch.autocast(images.device.type, dtype=torch.float16, enabled=amp):
        loss = model(images, labels, permutation)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach().float()


def train(config, run_dir, resume=None, progress=True, allow_world_size_change=False):
    """Train as `config` says, writing checkpoints, metrics and logs under `run_dir`.

    resume: None (a fresh run; refused when run_dir already has checkpoints), "auto" (the newest
    checkpoint of run_dir; refused when there is none), or a checkpoint path.
    allow_world_size_change: resume on another number of processes than the checkpoint's.
    Returns a summary dict: epochs done, steps, last epoch loss, last eval metrics, best.
    """
    env = dist.info_from_env()
    device = dist.resolve_device(config.device, env.local_rank)
    joined_here = not (torch_dist.is_available() and torch_dist.is_initialized())
    info = dist.init(device.type)
    try:
        run = _Run(config, Path(run_dir), info, device, progress)
        return run.fit(resolve_resume(run_dir, resume), allow_world_size_change)
    finally:
        if joined_here:
            dist.shutdown()


class _Run:
    """One process's part of a training run: its model, optimizer, data shard and records."""

    def __init__(self, config, run_dir, info, device, progress):
        self.config = config
        self.run_dir = run_dir
        self.info = info
        self.device = device
        self.amp = config.amp and device.type == "cuda"
        self.show_progress = progress and info.is_main and sys.stderr.isatty()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed 112x112 batches: pick the fastest kernels

    # -- set-up ---------------------------------------------------------------------------------
    def _build(self, checkpoint, checkpoint_path):
        """Data, validation data, network, optimizer, schedule, scaler (restored from `checkpoint`,
        the dict loaded from `checkpoint_path`, if any), loader. Everything that can be checked
        before the first step is checked here, and nothing is written."""
        config = self.config
        validate(config)  # a config built in Python has not met load_config's checks
        self.preprocessing = training_preprocessing(config.data)
        self.dataset = open_training_data(config.data, self.preprocessing)
        self.evaluates = bool(config.eval.pair_bin or config.eval.instance_zip) and config.eval.every > 0
        self.validation = self.wait_group = None
        if self.evaluates:  # opened and checked by the main process; its errors stop every process
            self.validation = dist.run_on_main(
                self.info, lambda: Validation(config.eval, self.preprocessing))
            wait = dist.broadcast_object(self.info, self.validation and self.validation.wait_seconds)
            self.wait_group = dist.wait_group(self.info, wait)
        per_process = len(self.dataset) // self.info.world_size
        if per_process < config.optim.batch_size:
            raise MfftoolsError(
                f"{self.dataset.where}: {len(self.dataset)} images give {per_process} per process, "
                f"fewer than one batch of {config.optim.batch_size}"
            )
        torch.manual_seed(config.seed)  # the same initial weights on every process
        self.network, self.head = build_network(config.model, self.dataset.num_classes)
        self.pretrained = None
        if config.model.pretrained and checkpoint is None:
            self.pretrained = load_pretrained(self.network, config.model, self.preprocessing)
        self.module = TrainingModule(self.network, self.head).to(self.device)
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.module, config.optim.lr, config.optim.backbone_lr_scale),
            lr=config.optim.lr, momentum=config.optim.momentum, weight_decay=config.optim.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=config.optim.milestones, gamma=config.optim.gamma
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch, self.step = 0, 0
        best_state = None
        if checkpoint is not None:
            best_state = self._restore(checkpoint, checkpoint_path)
        self.best = BestTracker(config.eval.best_metric, config.eval.best_mode, best_state)
        self.wrapped = self.module
        if self.info.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.module, device_ids=device_ids)
        self.sampler = DistributedSampler(
            self.dataset, num_replicas=self.info.world_size, rank=self.info.rank,
            shuffle=True, seed=config.seed, drop_last=True,
        )
        self.loader = DataLoader(
            self.dataset, batch_size=config.optim.batch_size, sampler=self.sampler,
            num_workers=config.data.workers, pin_memory=self.device.type == "cuda",
            drop_last=True, persistent_workers=config.data.workers > 0, generator=torch.Generator(),
        )
        logger.info("global batch %d (%d per process x %d process%s); %s head, s=%g, m=%g",
                    config.optim.batch_size * self.info.world_size, config.optim.batch_size,
                    self.info.world_size, "es" if self.info.distributed else "",
                    config.model.head, self.head.s, self.head.m)

    def _restore(self, state, path):
        classes = state["head"]["weight"].shape[0]
        if classes != self.dataset.num_classes:
            raise MfftoolsError(
                f"cannot resume from {path}: it has {classes} classes, "
                f"{self.dataset.where} has {self.dataset.num_classes}"
            )
        self.network.load_state_dict(state["model"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        if "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        else:  # the optimizer holds the current learning rates; the milestones count epochs
            self.scheduler.last_epoch = self.epoch
            logger.warning("%s holds no learning-rate schedule: it continues from epoch %d's "
                           "learning rate with the config's milestones", path, self.epoch)
        if self.amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.pretrained = state.get("pretrained")
        logger.info("resuming from %s (epoch %d, step %d)", path, self.epoch, self.step)
        return state.get("best")

    # -- the run --------------------------------------------------------------------------------
    def fit(self, checkpoint_path, allow_world_size_change=False):
        """Train the remaining epochs; returns the summary dict of `train`.

        The set-up checks everything it can and writes nothing (its log messages are held); then
        the run's records open, and an error that stops the run from there on is written to
        train.log too.
        """
        with HeldMessages() as setup:
            checkpoint = None
            if checkpoint_path is not None:
                checkpoint = load_checkpoint(checkpoint_path)
                check_resumable(checkpoint["config"], self.config, checkpoint_path)
                check_world_size(checkpoint, checkpoint_path, self.info, self.config.optim.batch_size,
                                 allow_world_size_change)
            self._build(checkpoint, checkpoint_path)
        resume_step = None if checkpoint is None else int(checkpoint["step"])
        self.log = RunLog(self.run_dir, enabled=self.info.is_main, resume_step=resume_step,
                          earlier=setup.records)
        try:
            return self._fit()
        except BaseException as error:
            self.log.error(error)
            raise
        finally:
            self.log.close()

    def _fit(self):
        config = self.config
        if self.info.is_main:
            config.dump(self.run_dir / RUN_CONFIG)
        summary = {"loss": None, "eval": None}
        if config.eval.at_start and self.epoch == 0 and self.evaluates:
            summary["eval"] = self._evaluate(epoch=0)
        for epoch in range(self.epoch, config.optim.epochs):
            summary["loss"] = self._train_epoch(epoch)
            self.scheduler.step()
            self.epoch = epoch + 1
            improved = False
            if self._eval_due(self.epoch):
                summary["eval"] = self._evaluate(self.epoch)
                improved = self.info.is_main and self.best.update(summary["eval"], self.epoch)
            self._save(improved)
        summary.update(epochs=self.epoch, step=self.step, best=self.best.state())
        return summary

    def _eval_due(self, epoch):
        every = self.config.eval.every
        return self.evaluates and (epoch % every == 0 or epoch == self.config.optim.epochs)

    def _epoch_batches(self, epoch):
        """An iterator over the epoch's batches, every random stream of the epoch seeded from
        (seed, epoch, rank).

        The loader draws its workers' base seed from a generator of its own, never from torch's
        global one that dropout draws from: persistent workers start once per process (in a later
        epoch when the run was resumed), and neither that nor the number of workers may move
        dropout's draws. Workers only read and decode images; flips and MixFair partners are
        drawn in the training process (BatchRandomness).
        """
        seed, rank = self.config.seed, self.info.rank
        self.sampler.set_epoch(epoch)
        self.loader.generator.manual_seed(stream_seed(seed, epoch, rank, LOADER_STREAM))
        batches = iter(self.loader)
        torch.manual_seed(stream_seed(seed, epoch, rank, DROPOUT_STREAM))
        return batches

    def _train_epoch(self, epoch):
        config, device = self.config, self.device
        batches = self._epoch_batches(epoch)
        randomness = BatchRandomness(config.seed, epoch, self.info.rank, config.data.horizontal_flip)
        self.module.train()
        lr = self.optimizer.param_groups[0]["lr"]
        epoch_loss = torch.zeros((), device=device)
        window_loss = torch.zeros((), device=device)
        window_steps, window_start, epoch_start = 0, time.perf_counter(), time.perf_counter()
        images_per_step = config.optim.batch_size * self.info.world_size
        steps = len(self.loader)
        if config.optim.max_steps_per_epoch:
            steps = min(steps, config.optim.max_steps_per_epoch)
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.optim.epochs}",
                   unit="batch", disable=not self.show_progress, leave=False)
        with bar:
            for images, labels, _groups in itertools.islice(batches, steps):
                images = randomness.apply_flip(images.to(device, non_blocking=True))
                labels = labels.to(device, non_blocking=True)
                permutation = randomness.permutation(len(labels), device) if self.module.mixfair else None
                loss = optimisation_step(self.wrapped, self.optimizer, self.scaler, images, labels,
                                         permutation, self.amp)
                self.step += 1
                window_steps += 1
                window_loss += loss
                epoch_loss += loss
                bar.update()
                if self.step % config.log_every == 0:
                    elapsed = time.perf_counter() - window_start
                    values = {
                        "loss": self._mean_over_processes(window_loss / window_steps),
                        "lr": lr,
                        "images_per_s": images_per_step * window_steps / elapsed,
                    }
                    self.log.record("train", epoch + 1, self.step, values)
                    bar.set_postfix(loss=f"{values['loss']:.4f}", img_s=f"{values['images_per_s']:.1f}")
                    window_loss.zero_()
                    window_steps, window_start = 0, time.perf_counter()
        seconds = time.perf_counter() - epoch_start
        mean_loss = self._mean_over_processes(epoch_loss / steps)
        self.log.record("epoch", epoch + 1, self.step, {
            "loss": mean_loss, "lr": lr, "seconds": seconds,
            "images_per_s": images_per_step * steps / seconds,
        })
        return mean_loss

    def _mean_over_processes(self, value):
        if self.info.distributed:
            value = value.clone()
            torch_dist.all_reduce(value)
            value /= self.info.world_size
        return float(value)

    def _evaluate(self, epoch):
        """The main process extracts the validation data, every process takes its share of the
        instance and 1:N scoring, the main process evaluates the pairs and records the metrics;
        returns them (None off the main process)."""
        out_dir = self.run_dir / EVAL_DIR
        if self.info.is_main:
            self.validation.extract(self.network, out_dir, self.device, progress=self.show_progress)
        self._wait_for_main()
        shared = shared_results(self.config.eval, out_dir, self.device, self.info)
        metrics = None
        if self.info.is_main:
            metrics = self.validation.results(out_dir, epoch, shared)
            self.log.record("eval", epoch, self.step, metrics, shown=self.validation.readable(metrics))
        self._wait_for_main()
        return metrics

    def _save(self, improved):
        if self.info.is_main:
            folder = self.run_dir / CHECKPOINT_DIR
            state = self._state()
            save_checkpoint(state, epoch_checkpoint_path(folder, self.epoch))
            if improved:
                save_checkpoint(state, self.run_dir / BEST_CHECKPOINT)
                shown = self.validation.readable({self.best.metric: self.best.value})[self.best.metric]
                logger.info("new best %s=%s at epoch %d", self.best.metric, format_value(shown), self.epoch)
            prune_checkpoints(folder, self.config.keep_checkpoints)
        self._barrier()

    def _state(self):
        return {
            "model": self.network.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "config": self.config.to_dict(),
            "arch": self.config.model.arch,
            "model_type": self.config.model.type,
            "head_type": self.config.model.head,
            "num_classes": self.dataset.num_classes,
            "group_names": list(self.dataset.group_names),
            "preprocessing": preprocessing_record(self.preprocessing),
            "world_size": self.info.world_size,
            "global_batch": self.config.optim.batch_size * self.info.world_size,
            "pretrained": self.pretrained,
            "best": self.best.state(),
            "mfftools_version": __version__,
        }

    def _barrier(self):
        if self.info.distributed:
            torch_dist.barrier()

    def _wait_for_main(self):
        """Wait for the main process's evaluation work, as long as its size needs."""
        if self.info.distributed:
            torch_dist.barrier(group=self.wait_group)
