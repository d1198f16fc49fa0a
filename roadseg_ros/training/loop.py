"""The training loop: one epoch of steps, validation, and the run from first epoch to last.

:func:`run` is the recipe: :func:`setup` wires the pieces of ``roadseg_ros.training``
together in a fixed order (the order matters for exact resume: the model's initialisation
and the data consume the seeded RNGs first), then :func:`run_epoch` trains and validates
one epoch and returns its record, which rank 0 saves, until ``--epochs``, early stopping
(``--patience``) or the end of a session (``--stop-after``, ``--time-limit``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from roadseg_ros.classes import Taxonomy, get_taxonomy
from roadseg_ros.dataset_registry import dataset_licenses
from roadseg_ros.metrics import ConfusionMatrix, segmentation_report
from roadseg_ros.training.data import EvalSet, Part, TrainSet, model_normalization, run_datasets
from roadseg_ros.training.distributed import DistInfo
from roadseg_ros.training.errors import TrainingError
from roadseg_ros.training.losses import build_loss, compute_loss, median_frequency_weights
from roadseg_ros.training.model import build_model_for, init_weights, unwrap
from roadseg_ros.training.outputs import RunOutputs, git_commit, make_checkpoint
from roadseg_ros.training.schedule import build_optimizer, build_scheduler
from roadseg_ros.training.state import RunState, jsonable, resolve_resume_path, seed_everything

__all__ = ["run", "setup", "run_epoch", "build_data", "RunData", "Session", "train_one_epoch", "evaluate",
           "session_over"]


def _autocast(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    loss_fn: Callable, device: torch.device, *, epoch: int, amp: bool, aux_weight: float,
                    max_steps: int | None = None, writer: Any = None, global_step: int = 0,
                    show_progress: bool = True) -> dict[str, float]:
    """One pass over ``loader`` (at most ``max_steps`` batches); returns mean loss, steps, last lr."""
    from tqdm import tqdm

    model.train()
    total_steps = len(loader) if max_steps is None else min(len(loader), max_steps)
    losses: list[float] = []
    bar = tqdm(total=total_steps, desc=f"epoch {epoch + 1}", disable=not show_progress, leave=False,
               dynamic_ncols=True)
    with bar:   # closed on an error too, so the error's line is not appended to the bar's
        for step, (images, labels) in enumerate(loader):
            if step >= total_steps:
                break
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with _autocast(device, amp):
                out = model(images)
            loss = compute_loss(out, labels, loss_fn, aux_weight)
            if not torch.isfinite(loss):
                raise TrainingError(f"epoch {epoch + 1} step {step}: loss is {loss.item()} "
                                    f"(try a lower --lr or no --amp)")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.item())
            if writer is not None:
                writer.add_scalar("train/loss", losses[-1], global_step + step + 1)
                writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], global_step + step + 1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            bar.update(1)
    return {"loss": float(np.mean(losses)) if losses else math.nan, "steps": len(losses),
            "first_loss": losses[0] if losses else math.nan, "lr": optimizer.param_groups[0]["lr"]}


@torch.no_grad()
def evaluate(model: nn.Module, dataset: EvalSet, device: torch.device, num_classes: int, *,
             batch_size: int = 4, amp: bool = False, dist_info: DistInfo | None = None,
             num_overlays: int = 0, show_progress: bool = True,
             workers: int = 0) -> tuple[ConfusionMatrix, list[tuple]]:
    """Confusion matrix of ``model`` on ``dataset`` (summed over all processes when distributed).

    Each process evaluates every ``world_size``-th sample (no padding, so no sample
    counts twice). Also returns up to ``num_overlays`` ``(image, prediction)`` pairs (rank 0).
    """
    from tqdm import tqdm

    from roadseg_ros.models import main_output

    info = dist_info or DistInfo()
    model.eval()
    indices = list(range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                        num_workers=workers)
    cm = ConfusionMatrix(num_classes)
    samples: list[tuple] = []
    for images, labels, raw in tqdm(loader, desc="validate", disable=not show_progress, leave=False):
        images = images.to(device)
        with _autocast(device, amp):
            logits = main_output(model(images))
        pred = logits.argmax(1)
        cm.update(labels.to(device), pred)
        for k in range(min(len(raw), num_overlays - len(samples))):
            samples.append((raw[k].numpy(), pred[k].to(torch.uint8).cpu().numpy()))
    if info.enabled:
        t = torch.from_numpy(cm.matrix).to(device if device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        cm.matrix = t.cpu().numpy().astype(np.int64)
    return cm, samples


def session_over(args: argparse.Namespace, epochs_done: int, elapsed_s: float, info: DistInfo,
                  device: torch.device) -> bool:
    """Whether this session should end now (rank 0 decides on time so that all processes agree)."""
    if args.stop_after is not None and epochs_done >= args.stop_after:
        return True
    if args.time_limit is None:
        return False
    over = torch.tensor([1 if elapsed_s > args.time_limit * 60 else 0],
                        device=device if device.type == "cuda" else "cpu")
    if info.enabled:
        dist.broadcast(over, src=0)
    return bool(over.item())


@dataclass
class RunData:
    """What a run trains and validates on, built once: the parts, the training loader, the validation sets."""

    train_parts: list[Part]
    val_parts: list[Part]
    train_set: TrainSet
    loader: DataLoader
    sampler: Any                                  # set_epoch(epoch) before each epoch
    val_sets: list[tuple[str, EvalSet]]           # (description, set): each part is scored on its own


def build_data(args: argparse.Namespace, info: DistInfo, device: torch.device, taxonomy: Taxonomy,
               mean: Sequence[float], std: Sequence[float], say: Callable[..., None]) -> RunData:
    """The run's datasets, augmented at each dataset's crop size (``--crop``) and drawn at its
    weight (``--weight``), and its validation sets resized to ``--eval-size``."""
    train_parts, val_parts = run_datasets(args, taxonomy)
    names = [spec.name for spec, _ in train_parts]
    jitter = float(getattr(args, "aspect_jitter", 1.0))
    crops = getattr(args, "crop", {})
    train_set = TrainSet([ds for _, ds in train_parts], args.input_size, not args.no_augment, args.seed,
                         mean=mean, std=std, crop_sizes=[crops.get(n) for n in names],
                         aspect_range=(1.0 / jitter, jitter))
    val_sets = [(spec.describe(), EvalSet([ds], args.eval_size, mean=mean, std=std))
                for spec, ds in val_parts]
    loader, sampler = _loader(args, info, device, train_set, names, [ds for _, ds in train_parts], say)
    return RunData(train_parts, val_parts, train_set, loader, sampler, val_sets)


def _loader(args: argparse.Namespace, info: DistInfo, device: torch.device, train_set: TrainSet,
            names: list[str], datasets: list[Any], say: Callable[..., None]) -> tuple[DataLoader, Any]:
    """The training loader and its sampler: one dataset per batch when datasets are weighted or
    cropped apart (or a mapping oversamples), else a plain shuffled (distributed) sampler."""
    weights = getattr(args, "weight", {})
    per_sample = [ds.sample_weights() if hasattr(ds, "sample_weights") else None for ds in datasets]
    for n, w in zip(names, per_sample):
        if w is not None:
            say(f"oversampling: {int((w > 1).sum())} of {len(w)} {n} images drawn {w.max():g}x as often "
                f"(the mapping's oversample section)")
    if getattr(args, "crop", {}) or weights or any(w is not None for w in per_sample):
        from roadseg_ros.data.sampling import MixedBatchSampler

        sampler = MixedBatchSampler([len(ds) for ds in datasets], [weights.get(n, 1.0) for n in names],
                                    args.batch_size, seed=args.seed, rank=info.rank,
                                    world_size=info.world_size, sample_weights=per_sample)
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=args.workers,
                            pin_memory=device.type == "cuda", persistent_workers=False)
        say("mixing: " + ", ".join(f"{n} {k} samples/epoch at {c[0]}x{c[1]}" for n, k, c in
                                   zip(names, sampler.samples_per_epoch(), train_set.crop_sizes)))
        return loader, sampler
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=args.seed, drop_last=False)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                        pin_memory=device.type == "cuda", drop_last=len(sampler) > args.batch_size,
                        persistent_workers=False)
    return loader, sampler


def _validate(model: nn.Module, val_sets: list[tuple[str, EvalSet]], device: torch.device, taxonomy: Taxonomy,
              args: argparse.Namespace, info: DistInfo) -> tuple[dict, dict[str, dict], list[tuple]]:
    """Score every validation set on its own (one mixed mIoU hides a dataset going wrong) and all
    together; returns the overall report, each set's mean and road IoU, and overlay samples."""
    nc = taxonomy.num_classes
    cm, samples, parts = ConfusionMatrix(nc), [], {}
    for desc, part in val_sets:
        want = (args.overlays - len(samples)) if info.is_main else 0
        part_cm, part_samples = evaluate(unwrap(model), part, device, nc, batch_size=args.batch_size,
                                         amp=args.amp, dist_info=info, num_overlays=want,
                                         show_progress=info.is_main, workers=args.workers)
        cm.matrix += part_cm.matrix
        samples += part_samples
        rep = segmentation_report(part_cm.matrix, taxonomy.class_names, taxonomy.drivable_classes)
        parts[desc] = {"mean_iou": rep["mean_iou"], "road_iou": rep["road"]["iou"]}
    return segmentation_report(cm.matrix, taxonomy.class_names, taxonomy.drivable_classes), parts, samples


def _log_validation(writer: Any, report: dict, samples: list[tuple], taxonomy: Taxonomy, step: int) -> None:
    """TensorBoard: mean IoU, accuracy, per-class IoU, road F1 and a few overlays."""
    from roadseg_ros.visualize import overlay

    miou = report["mean_iou"] if report["mean_iou"] is not None else -math.inf
    writer.add_scalar("val/mean_iou", miou, step)
    writer.add_scalar("val/pixel_accuracy", report["pixel_accuracy"] or 0.0, step)
    for name, v in report["per_class_iou"].items():
        if v is not None:
            writer.add_scalar(f"val_iou/{name}", v, step)
    if report["road"]["f1"] is not None:
        writer.add_scalar("val/road_f1", report["road"]["f1"], step)
    if samples:
        grid = np.stack([overlay(img, m, taxonomy.class_colors, 0.5) for img, m in samples])
        writer.add_images("val/overlay", grid, step, dataformats="NHWC")


@dataclass
class Session:
    """Everything a run sets up once before its first epoch (rank 0 also holds the outputs' writer)."""

    args: argparse.Namespace
    info: DistInfo
    device: torch.device
    taxonomy: Taxonomy
    data: RunData
    model: nn.Module                              # DistributedDataParallel-wrapped when distributed
    arch_kwargs: dict[str, Any]
    loss_fn: Callable
    state: RunState
    outputs: RunOutputs
    writer: Any                                   # TensorBoard SummaryWriter (rank 0), else None
    provenance: dict[str, Any]                    # what every checkpoint of the run records
    say: Callable[..., None]                      # print on rank 0, nothing elsewhere


def setup(args: argparse.Namespace, info: DistInfo, device: torch.device, command: list[str]) -> Session:
    """Seed, build the model, the data, the loss and the optimiser state (restored on --resume), wrap
    for DDP and open the outputs, in this order (the model and data consume the seeded RNGs first)."""
    seed_everything(args.seed + info.rank)
    if device.type == "cpu":   # reuse freed activation buffers instead of page-faulting them in again
        from roadseg_ros.allocator import keep_freed_memory
        keep_freed_memory()
    taxonomy = get_taxonomy(args.taxonomy)
    nc = taxonomy.num_classes
    say = print if info.is_main else (lambda *a, **k: None)

    model, arch_kwargs = build_model_for(args, nc)
    mean, std = model_normalization(model)
    data = build_data(args, info, device, taxonomy, mean, std, say)
    steps_per_epoch = len(data.loader) if args.max_steps_per_epoch is None else min(len(data.loader),
                                                                                      args.max_steps_per_epoch)
    init_info = None
    if args.init is not None:   # a resumed run has its weights from resume.pt already
        init_info = init_weights(model if args.resume is None else None, args.init)
        say(f"fine-tuning from {args.init} ({init_info['arch']}, trained {init_info.get('date') or '?'})")
    model.to(device)
    weights = None
    if args.class_weights == "median-freq":
        weights = median_frequency_weights([ds for _, ds in data.train_parts], nc).to(device)
        say("class weights (median frequency): " + ", ".join(f"{n}={w:.2f}" for n, w in
                                                           zip(taxonomy.class_names, weights.tolist())))
    loss_fn = build_loss(args.loss, weights, args.focal_gamma)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
    optimizer = build_optimizer(args, model)
    state = RunState(arch=args.model, num_classes=nc, planned_epochs=args.epochs, model=model,
                     optimizer=optimizer, scheduler=build_scheduler(optimizer, steps_per_epoch * args.epochs,
                                                                    args.schedule, args.warmup_steps),
                     scaler=torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda"))
    if args.resume is not None:
        path = resolve_resume_path(args.resume)
        planned = state.restore(path)
        if planned != args.epochs:
            say(f"warning: the resumed run planned {planned} epochs, this one {args.epochs}: "
                f"the learning-rate schedule changes")
        say(f"resumed from {path}: {state.epoch} epochs done, best val mIoU {state.best_miou:.4f}")

    if info.enabled:
        ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
        state.model = model

    writer = None
    outputs = RunOutputs(args.output, half=args.half)
    if info.is_main:
        outputs.start(state.history)
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(args.output / "tb"), purge_step=state.global_step or None)
    say(f"training {args.model} ({sum(p.numel() for p in model.parameters()):,} parameters) on {device} "
        f"x{info.world_size}: {len(data.train_set)} training / {sum(len(s) for _, s in data.val_sets)} "
        f"validation samples, {steps_per_epoch} steps per epoch")
    specs = [spec for spec, _ in data.train_parts + data.val_parts]
    provenance = {
        "datasets": {"train": [spec.describe() for spec, _ in data.train_parts],
                     "val": [spec.describe() for spec, _ in data.val_parts]},
        "data_licenses": dataset_licenses(specs),
        "command": " ".join(command), "git_commit": git_commit(), "seed": args.seed,
        "hyperparameters": jsonable(vars(args)),
        "normalization": {"mean": list(mean), "std": list(std)}, "world_size": info.world_size,
        "device": str(device),
    }
    if init_info is not None:
        provenance["init"] = init_info
    return Session(args, info, device, taxonomy, data, model, arch_kwargs, loss_fn, state, outputs, writer,
                   provenance, say)


def run_epoch(s: Session, epoch: int) -> tuple[dict[str, Any], bool]:
    """Train epoch ``epoch`` (0-based), validate when due (every ``--eval-every`` and after the last);
    returns the epoch's record (its metrics.jsonl line, also kept in the history) and whether
    these weights are the best so far (always, without validation: the latest are the best known)."""
    args, state, data = s.args, s.state, s.data
    t0 = time.time()
    data.train_set.set_epoch(epoch)
    data.sampler.set_epoch(epoch)
    stats = train_one_epoch(s.model, data.loader, state.optimizer, state.scheduler, state.scaler, s.loss_fn,
                            s.device, epoch=epoch, amp=args.amp, aux_weight=args.aux_weight,
                            max_steps=args.max_steps_per_epoch, writer=s.writer,
                            global_step=state.global_step, show_progress=s.info.is_main)
    state.global_step += stats["steps"]
    record: dict[str, Any] = {"epoch": epoch + 1, "step": state.global_step, "train_loss": stats["loss"],
                              "first_step_loss": stats["first_loss"], "lr": stats["lr"]}
    improved = False
    if not data.val_sets:
        improved = True
        state.best_epoch = epoch + 1
    elif (epoch + 1) % max(1, args.eval_every) == 0 or epoch + 1 == args.epochs:
        report, record["val_parts"], samples = _validate(s.model, data.val_sets, s.device, s.taxonomy, args,
                                                         s.info)
        record["val"] = report
        improved = state.record_validation(report["mean_iou"])
        if s.writer is not None:
            _log_validation(s.writer, report, samples, s.taxonomy, state.global_step)
    record["best_val_mean_iou"] = state.best
    record["time_s"] = round(time.time() - t0, 3)
    state.history.append(jsonable(record))
    state.epoch = epoch + 1
    if s.writer is not None:
        s.writer.add_scalar("train/epoch_loss", stats["loss"], state.global_step)
    return record, improved


def _save(s: Session, record: dict[str, Any], improved: bool) -> None:
    """last.pt (and best.pt when ``improved``), resume.pt and the metrics line of the epoch just run."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    training = dict(s.provenance, epochs=s.state.epoch, planned_epochs=s.args.epochs,
                    global_step=s.state.global_step, best_epoch=s.state.best_epoch, metrics=record,
                    history=s.state.history, date=now)
    checkpoint = make_checkpoint(s.model, s.args, s.taxonomy, s.arch_kwargs, training)
    s.outputs.save_epoch(checkpoint, s.state, improved)


def run(args: argparse.Namespace, info: DistInfo, device: torch.device, command: list[str]) -> int:
    """Train as ``args`` say; returns the exit status. Rank 0 writes everything under ``args.output``.

    Raises :class:`~roadseg_ros.training.errors.TrainingError` (a configuration one for data,
    model, device and checkpoint problems) for the command to report.
    """
    s = setup(args, info, device, command)
    start_epoch, session_start = s.state.epoch, time.time()
    try:
        for epoch in range(start_epoch, args.epochs):
            record, improved = run_epoch(s, epoch)
            if info.is_main:
                _save(s, record, improved)
                s.say(_epoch_line(epoch, args.epochs, record, s.state), flush=True)
            stop = "val" in record and 0 < args.patience <= s.state.bad_evals
            more = not stop and epoch + 1 < args.epochs
            elapsed = time.time() - session_start
            if more and session_over(args, epoch + 1 - start_epoch, elapsed, info, device):
                s.say(f"session ends after epoch {epoch + 1} (--stop-after/--time-limit); continue with "
                      f"--resume {args.output}")
                break
            if stop:
                s.say(f"early stop: no better val mIoU for {args.patience} evaluations (best "
                      f"{s.state.best_miou:.4f} at epoch {s.state.best_epoch})")
                break
    finally:
        if s.writer is not None:
            s.writer.close()
    if info.enabled:
        dist.barrier()
    return 0


def _epoch_line(epoch: int, epochs: int, record: dict, state: RunState) -> str:
    val_txt = (f", val mIoU {record['val']['mean_iou']:.4f} (best {state.best_miou:.4f} @ {state.best_epoch})"
               if "val" in record and record["val"]["mean_iou"] is not None else "")
    for desc, part in record.get("val_parts", {}).items():
        if part["mean_iou"] is not None:
            val_txt += f"\n  {desc}: mIoU {part['mean_iou']:.4f}, road IoU {part['road_iou'] or 0:.4f}"
    return (f"epoch {epoch + 1}/{epochs}: loss {record['train_loss']:.4f} (first step "
            f"{record['first_step_loss']:.4f}), lr {record['lr']:.2e}{val_txt}, {record['time_s']:.1f}s")
