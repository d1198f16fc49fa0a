"""Measure candidate real-time networks: how the default model (``DEFAULT_MODEL``) was chosen.

The node's target is >= 20 frames/s for ``Segmenter.predict`` at 576x160 on a 2-core CPU,
pre/post-processing included, so the network alone needs ~28 frames/s (<= ~35 ms). The
model must also train from scratch on CamVid (367 images) on the CPU in about an hour,
so the training step time is measured too.

For each candidate this prints (and optionally writes as JSON): parameters, inference
latency (median and p90 ms, frames/s) at batch 1, fp32, ``torch.inference_mode``,
channels-last, with ``torch.set_num_threads(threads)``; and the time of one training
step (forward + backward + SGD) on a batch of crops.

With ``--camvid DIR`` (the SegNet-layout CamVid folder, e.g. /work/shared/data/camvid) it
also trains each candidate from scratch for ``--train-minutes`` on ``train/`` at 240x176
(AdamW 2e-3, batch 8, flips, aux loss 0.4, 1 thread) and reports val pixel accuracy, mIoU
and road IoU on the first 50 ``val/`` images: a quick "does it learn from scratch" check.

Run:  ./dev.sh run python benchmarks/pick_realtime_model.py [--quick] [--json out.json]
      ./dev.sh run python benchmarks/pick_realtime_model.py --no-train --only roadnet_small lraspp \
          --camvid /work/shared/data/camvid --train-minutes 5

Figures on the 2-core AMD EPYC box, 2026-11-21, quiet machine (load < 2), 11 classes:

    candidate                                  params M  median ms  p90 ms   fps  train step ms
    lraspp_mobilenet_v3_large                      3.22       12.3    12.6  81.2   (noisy)
    lraspp_mobilenet_v3_large x0.75 reduced tail   1.05        7.5     7.6 134.2     616
    roadnet_small (32,48,96,192,256) dec 64        4.08       11.0    11.2  91.1     367  <- default
    roadnet thin (32,32,64,128,256) dec 64         3.02        8.1     8.2 124.2     254
    roadnet narrow (24,24,48,96,192) dec 48        1.70        6.2     6.3 160.4     188
    roadnet medium (32,48,96,192,384) dec 96       6.78       14.6    17.1  68.4     525
    roadnet large (32,64,128,256,512) 2222 dec128 12.12       24.8    25.0  40.4     840
    pspnet_resnet18 (reference)                   14.10       95.8    98.7  10.4    2501

5-minute from-scratch CamVid check (1 thread, box shared with other jobs, ~10 epochs):
roadnet_small val mIoU 0.449 (pixel acc 0.866, road IoU 0.904); lraspp_mobilenet_v3_large
val mIoU 0.316 (pixel acc 0.749, road IoU 0.903).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from roadseg_ros.models import DEFAULT_MODEL, build_model, main_output

# (label, registry name, kwargs)
CANDIDATES: list[tuple[str, str, dict]] = [
    ("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large", {}),
    ("lraspp_mobilenet_v3_large x0.75 reduced tail", "lraspp_mobilenet_v3_large",
     {"width_mult": 0.75, "reduced_tail": True}),
    ("roadnet_small (32,48,96,192,256) dec 64", "roadnet_small", {}),
    ("roadnet thin (32,32,64,128,256) dec 64", "roadnet_small", {"widths": (32, 32, 64, 128, 256)}),
    ("roadnet narrow (24,24,48,96,192) dec 48", "roadnet_small",
     {"widths": (24, 24, 48, 96, 192), "decoder": 48}),
    ("roadnet medium (32,48,96,192,384) dec 96", "roadnet_small",
     {"widths": (32, 48, 96, 192, 384), "decoder": 96}),
    ("roadnet large (32,64,128,256,512) 2222 dec 128", "roadnet_small",
     {"widths": (32, 64, 128, 256, 512), "blocks": (2, 2, 2, 2), "decoder": 128}),
    ("pspnet_resnet18 (reference)", "pspnet_resnet18", {}),
]


def _time_train_step(model: torch.nn.Module, num_classes: int, batch: int, width: int, height: int,
                     steps: int) -> float:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, height, width).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch, height, width))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        out = model(x)
        loss = F.cross_entropy(main_output(out), y)
        if isinstance(out, dict) and "aux" in out:
            loss = loss + 0.4 * F.cross_entropy(out["aux"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:   # the first step pays one-off allocation costs
            times.append((time.perf_counter() - t0) * 1000.0)
    model.eval()
    return statistics.median(times)


def _load_camvid(root: str, split: str, size: tuple[int, int], limit: int | None = None):
    import glob

    import cv2
    import numpy as np

    files = sorted(glob.glob(os.path.join(root, split, "*.png")))[:limit]
    if not files:
        raise SystemExit(f"--camvid {root}: no PNG images in {os.path.join(root, split)}")
    images, labels = [], []
    for f in tqdm(files, desc=f"camvid {split}", unit="img", leave=False):
        img = cv2.imread(f, cv2.IMREAD_COLOR)
        lab = cv2.imread(os.path.join(root, split + "annot", os.path.basename(f)), cv2.IMREAD_GRAYSCALE)
        if img is None or lab is None:
            raise SystemExit(f"{f}: cannot read the image or its label in {split}annot/")
        images.append(cv2.resize(img[:, :, ::-1], size, interpolation=cv2.INTER_AREA))
        labels.append(cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    y = torch.from_numpy(np.stack(labels)).long()
    y[y > 10] = 255   # 11 = unlabelled -> ignored
    return (x - mean) / std, y


def _camvid_check(name: str, kwargs: dict, data, minutes: float) -> dict:
    """Train from scratch for ``minutes`` and score on val: a learnability check, not a benchmark."""
    (xt, yt), (xv, yv) = data
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = build_model(name, 11, **kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    t0, steps = time.perf_counter(), 0
    with tqdm(desc=f"train {name}", unit="step", leave=False) as bar:
        while time.perf_counter() - t0 < minutes * 60:
            idx = torch.randperm(len(xt), generator=gen)[:8]
            x, y = xt[idx], yt[idx]
            if torch.rand(1, generator=gen).item() < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            model.train()
            out = model(x)
            loss = F.cross_entropy(main_output(out), y, ignore_index=255)
            if isinstance(out, dict) and "aux" in out:
                loss = loss + 0.4 * F.cross_entropy(out["aux"], y, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            bar.update()
    model.eval()
    cm = torch.zeros(11, 11, dtype=torch.long)
    with torch.inference_mode():
        for i in range(0, len(xv), 10):
            pred, target = model(xv[i:i + 10]).argmax(1), yv[i:i + 10]
            keep = target != 255
            cm += torch.bincount(target[keep] * 11 + pred[keep], minlength=121).reshape(11, 11)
    iou = cm.diag() / (cm.sum(0) + cm.sum(1) - cm.diag()).clamp(min=1)
    return {"camvid_steps": steps, "camvid_epochs": round(steps * 8 / len(xt), 1),
            "camvid_pixel_acc": round((cm.diag().sum() / cm.sum()).item(), 3),
            "camvid_miou": round(iou.mean().item(), 3), "camvid_road_iou": round(iou[3].item(), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer iterations (a rough figure in ~1 minute)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2: the target box)")
    p.add_argument("--size", default="576x160", help="inference WIDTHxHEIGHT (default 576x160)")
    p.add_argument("--train-size", default="480x352", help="training crop WIDTHxHEIGHT (default 480x352)")
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--no-train", action="store_true", help="skip the training-step measurement")
    p.add_argument("--only", nargs="*", help="measure only candidates whose label contains one of these")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--camvid", help="CamVid folder (SegNet layout): also run the from-scratch training check")
    p.add_argument("--train-minutes", type=float, default=5.0, help="minutes per candidate for --camvid")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    width, height = (int(v) for v in args.size.lower().split("x"))
    tw, th = (int(v) for v in args.train_size.lower().split("x"))
    iters, warmup, steps = (15, 3, 2) if args.quick else (60, 10, 4)
    num_classes = 11

    cands = [c for c in CANDIDATES if not args.only or any(o in c[0] for o in args.only)]
    models = []
    x = torch.randn(1, 3, height, width).contiguous(memory_format=torch.channels_last)
    for _label, name, kwargs in cands:
        model = build_model(name, num_classes, **kwargs).eval().to(memory_format=torch.channels_last)
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
        models.append(model)
    # Round-robin over the candidates, one frame each per round, so that load from other
    # processes on the box (it is shared) hits every candidate alike.
    times: list[list[float]] = [[] for _ in cands]
    with torch.inference_mode():
        for _ in tqdm(range(iters), desc="inference rounds", unit="round"):
            for i, model in enumerate(models):
                t0 = time.perf_counter()
                model(x)
                times[i].append((time.perf_counter() - t0) * 1000.0)
    results = []
    for (label, name, kwargs), model, ts in zip(cands, models, times):
        med = statistics.median(ts)
        p90 = sorted(ts)[int(0.9 * (len(ts) - 1))]
        params = sum(p.numel() for p in model.parameters())
        row = {"label": label, "arch": name, "kwargs": kwargs, "params_m": round(params / 1e6, 3),
               "median_ms": round(med, 2), "p90_ms": round(p90, 2), "fps": round(1000.0 / med, 1)}
        results.append(row)
    if not args.no_train:
        for row, model in tqdm(list(zip(results, models)), desc="train steps", unit="model"):
            step_ms = _time_train_step(model, num_classes, args.train_batch, tw, th, steps)
            row["train_step_ms"] = round(step_ms, 1)

    if args.camvid:
        torch.set_num_threads(1)
        data = (_load_camvid(args.camvid, "train", (240, 176)),
                _load_camvid(args.camvid, "val", (240, 176), 50))
        for row, (_label, name, kwargs) in zip(results, cands):
            row.update(_camvid_check(name, kwargs, data, args.train_minutes))
            tqdm.write(json.dumps(row))
        torch.set_num_threads(args.threads)

    load = os.getloadavg()[0]
    if load > args.threads:
        print(f"\nWARNING: load average {load:.1f} > {args.threads} threads: other processes share the CPU, "
              "figures are inflated and noisy; re-run on a quiet machine")
    print(f"\nnetwork only, {width}x{height}, batch 1, fp32, inference_mode, channels-last, "
          f"{args.threads} threads; train step = batch {args.train_batch} at {tw}x{th}, fwd+bwd+SGD")
    print(f"{'candidate':48s} {'params M':>8s} {'median ms':>9s} {'p90 ms':>7s} {'fps':>6s} {'train ms':>9s}")
    for r in results:
        mark = "  <- DEFAULT_MODEL" if r["arch"] == DEFAULT_MODEL and not r["kwargs"] else ""
        print(f"{r['label']:48s} {r['params_m']:8.2f} {r['median_ms']:9.1f} {r['p90_ms']:7.1f} "
              f"{r['fps']:6.1f} {r.get('train_step_ms', float('nan')):9.0f}{mark}")
        if "camvid_miou" in r:
            print(f"{'':48s} camvid from scratch, {r['camvid_epochs']} epochs: "
                  f"val mIoU {r['camvid_miou']:.3f}, pixel acc {r['camvid_pixel_acc']:.3f}, "
                  f"road IoU {r['camvid_road_iou']:.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"size": [width, height], "threads": args.threads, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
