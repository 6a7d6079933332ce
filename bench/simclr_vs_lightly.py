"""SimCLR training speed: selfsup against lightly, side by side in one run.

Both libraries train the same encoder (torchvision ResNet-18 with a CIFAR stem: 3x3 stride-1
first convolution, no max-pool) on 32x32 RGB images, batch 128, 2 views, SGD, each library as
its users get it by default:

- selfsup: `selfsup.engine` (the Lightning module `selfsup train` runs), batched on-device
  SimCLR views, `nt_xent`, channels-last; `--precision bf16-mixed` is `trainer.precision`;
  `e2e-compile` is the end-to-end run with `model.compile=true` (torch.compile of every network).
- lightly: `SimCLRTransform` in a DataLoader with num_workers = CPU count, its
  `SimCLRProjectionHead` and `NTXentLoss`, a plain PyTorch loop in fp32.

Every measurement runs in its own subprocess (same threads and allocator, a fresh peak-RSS
counter), alternating the libraries, `--runs` times; the table reports medians:

- step: model + loss + optimiser on ready-made views (views/s)
- e2e: loading + augmentation + step (views/s)
- e2e-compile: the same with torch.compile, timed after 2 untimed steps; its compile time is
  the time of those 2 steps less 2 steady steps (what the first step of a compiled run pays)
- encoder: the bare encoder forward + backward on 256 images (images/s), the floor of a step
- ntxent: the loss forward + backward on [128, 128] embeddings (calls/s)
- peak RSS of the end-to-end run (MiB)

    python bench/simclr_vs_lightly.py --runs 3 --steps 4 --out bench/results/simclr_vs_lightly.md
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH, SIZE, IMAGES = 128, 32, 2048


def timed_steps(step, steps: int, warmup: int = 1) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def fake_images():
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, (IMAGES, SIZE, SIZE, 3), dtype=np.uint8)


# ---------------------------------------------------------------- selfsup
def selfsup_module(precision: str, compile_networks: bool = False):

    from selfsup.engine.configure import compose_config
    from selfsup.data import ArrayDataset, DataSplits
    from selfsup.engine.build import build_method
    from selfsup.engine.module import SSLModule
    import torch

    cfg = compose_config(None, [
        "model.encoder=resnet18", "model.cifar_stem=true", f"data.batch_size={BATCH}", "method.proj_hidden_dim=2048",
        "method.proj_dim=128", "augment.blur_prob=0.0", "augment.crop_scale=[0.08,1.0]", f"trainer.precision={precision}",
        f"model.compile={str(compile_networks).lower()}",
    ])
    images = torch.from_numpy(fake_images()).permute(0, 3, 1, 2).contiguous()
    data = ArrayDataset(images, torch.zeros(IMAGES, dtype=torch.long))
    splits = DataSplits("fake-cifar", data, data, data.take(range(BATCH)), data, 10, "image", (0.5,) * 3, (0.25,) * 3)
    return cfg, splits, SSLModule(cfg, build_method(cfg, splits), 10)


def selfsup_measure(kind: str, steps: int, precision: str) -> float | tuple[float, float]:
    import lightning as L
    import torch

    from selfsup.engine.build import SplitsDataModule

    compiled = kind == "e2e-compile"
    cfg, splits, module = selfsup_module(precision, compiled)
    if kind in ("e2e", "e2e-compile"):
        untimed = 2 if compiled else 1  # a compiled run compiles in its first steps
        times = {}

        class Clock(L.Callback):
            def on_train_start(self, trainer, *args):
                times["start"] = time.perf_counter()

            def on_train_batch_start(self, trainer, *args):
                if trainer.global_step == untimed:
                    times["timed"] = time.perf_counter()

            def on_train_end(self, trainer, *args):
                times["end"] = time.perf_counter()

        trainer = L.Trainer(max_steps=steps + untimed, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, precision=precision,
                            callbacks=[Clock()], use_distributed_sampler=False, num_sanity_val_steps=0,
                            limit_val_batches=0)
        trainer.fit(module, datamodule=SplitsDataModule(splits, cfg))
        step_s = (times["end"] - times["timed"]) / steps
        views_per_s = 2 * BATCH / step_s
        return (views_per_s, times["timed"] - times["start"] - untimed * step_s) if compiled else views_per_s
    method = module.method
    optimizer = torch.optim.SGD(method.parameters(), lr=0.06, momentum=0.9)
    x = torch.rand(BATCH, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    if kind == "step":
        views = [x, x.flip(-1)]

        def step():
            with autocast:
                loss = method.loss(views, torch.zeros(BATCH, dtype=torch.long))["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return 2 * BATCH / timed_steps(step, steps)
    if kind == "encoder":
        both = torch.cat([x, x.flip(-1)])

        def step():
            with autocast:
                out = method.encoder(both).float().square().mean()
            out.backward()

        return 2 * BATCH / timed_steps(step, steps)
    if kind == "ntxent":
        from selfsup.losses import nt_xent

        z1, z2 = torch.randn(BATCH, 128, requires_grad=True), torch.randn(BATCH, 128, requires_grad=True)
        return 1 / timed_steps(lambda: nt_xent(z1, z2, 0.5).backward(), 200, warmup=10)
    raise ValueError(kind)


# ---------------------------------------------------------------- lightly
def lightly_model():
    import torch
    import torchvision
    from lightly.models.modules import SimCLRProjectionHead
    from torch import nn

    resnet = torchvision.models.resnet18()
    resnet.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    resnet.maxpool = nn.Identity()
    backbone = nn.Sequential(*list(resnet.children())[:-1])

    class SimCLR(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.projection_head = SimCLRProjectionHead(512, 2048, 128)

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

    return SimCLR(), torch


def lightly_measure(kind: str, steps: int, precision: str) -> float:
    from lightly.loss import NTXentLoss

    model, torch = lightly_model()
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    if kind == "step":
        x1 = x.flip(-1)

        def step():
            loss = criterion(model(x), model(x1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return 2 * BATCH / timed_steps(step, steps)
    if kind == "encoder":
        both = torch.cat([x, x.flip(-1)])
        return 2 * BATCH / timed_steps(lambda: model.backbone(both).square().mean().backward(), steps)
    if kind == "ntxent":
        z1, z2 = torch.randn(BATCH, 128, requires_grad=True), torch.randn(BATCH, 128, requires_grad=True)
        return 1 / timed_steps(lambda: criterion(z1, z2).backward(), 200, warmup=10)
    if kind == "e2e":
        from lightly.transforms import SimCLRTransform
        from PIL import Image

        images = fake_images()
        transform = SimCLRTransform(input_size=SIZE, gaussian_blur=0.0)

        class Images(torch.utils.data.Dataset):
            def __len__(self):
                return len(images)

            def __getitem__(self, i):
                return transform(Image.fromarray(images[i])), 0

        loader = torch.utils.data.DataLoader(Images(), batch_size=BATCH, shuffle=True, drop_last=True,
                                             num_workers=os.cpu_count(), persistent_workers=True)
        batches = iter(loader)

        def step():
            (x0, x1), _ = next(batches)
            loss = criterion(model(x0), model(x1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return 2 * BATCH / timed_steps(step, steps)
    raise ValueError(kind)


# ---------------------------------------------------------------- driver
def worker(lib: str, kind: str, precision: str, steps: int) -> None:
    import torch

    torch.manual_seed(0)
    value = (selfsup_measure if lib == "selfsup" else lightly_measure)(kind, steps, precision)
    value, compile_s = value if isinstance(value, tuple) else (value, None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"value": value, "compile_s": compile_s, "peak_mib": max(peak, children)}))


def measure(lib: str, kind: str, steps: int, precision: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", lib, kind, precision, "--steps", str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("bench/results/simclr_vs_lightly.md"))
    p.add_argument("--worker", nargs=3, metavar=("LIB", "KIND", "PRECISION"))
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile arms")
    args = p.parse_args()
    if args.worker:
        worker(*args.worker, args.steps)
        return
    arms = [("step", "32-true"), ("e2e", "32-true"), ("e2e", "bf16-mixed"), ("e2e-compile", "32-true"),
            ("e2e-compile", "bf16-mixed"), ("encoder", "32-true"), ("ntxent", "32-true")]
    if args.no_compile:
        arms = [arm for arm in arms if arm[0] != "e2e-compile"]
    results: dict = {}
    for run in range(args.runs):
        for kind, precision in arms:
            libs = ["selfsup", "lightly"] if run % 2 == 0 else ["lightly", "selfsup"]
            for lib in libs:
                if lib == "lightly" and (precision != "32-true" or kind == "e2e-compile"):
                    continue  # lightly is measured as its users get it: fp32, eager
                r = measure(lib, kind, args.steps, precision)
                results.setdefault((lib, kind, precision), []).append(r)
                print(f"run {run}: {lib:8s} {kind:8s} {precision:10s} {r['value']:9.2f}  peak {r['peak_mib']:.0f} MiB",
                      flush=True)
    med = {k: statistics.median(r["value"] for r in v) for k, v in results.items()}
    peak = {k: statistics.median(r["peak_mib"] for r in v) for k, v in results.items()}
    lightly_e2e = med[("lightly", "e2e", "32-true")]
    rows = [
        ("model + loss + optimiser step (views/s)", "step", "32-true"),
        ("end to end, fp32 (views/s)", "e2e", "32-true"),
        ("bare encoder fwd+bwd on 256 images (images/s)", "encoder", "32-true"),
        ("NT-Xent fwd+bwd, [128,128] (calls/s)", "ntxent", "32-true"),
    ]
    lines = [f"torch threads {os.cpu_count()}, batch {BATCH}, {SIZE}x{SIZE} RGB, ResNet-18 CIFAR stem, "
             f"medians of {args.runs} runs x {args.steps} timed steps", "",
             "| measurement | selfsup | lightly | selfsup / lightly |", "|---|---|---|---|"]
    for label, kind, precision in rows:
        a, b = med[("selfsup", kind, precision)], med[("lightly", kind, precision)]
        lines.append(f"| {label} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    selfsup_arms = [("e2e", "bf16-mixed", "end to end, selfsup bf16-mixed")]
    if not args.no_compile:
        selfsup_arms += [("e2e-compile", "32-true", "end to end, selfsup fp32 + compile"),
                         ("e2e-compile", "bf16-mixed", "end to end, selfsup bf16-mixed + compile")]
    for kind, precision, label in selfsup_arms:
        value = med[("selfsup", kind, precision)]
        lines.append(f"| {label} vs lightly fp32 (views/s) | {value:.1f} | {lightly_e2e:.1f} | "
                     f"{value / lightly_e2e:.2f}x |")
    a, b = peak[("selfsup", "e2e", "32-true")], peak[("lightly", "e2e", "32-true")]
    lines.append(f"| peak RSS, end to end fp32 (MiB) | {a:.0f} | {b:.0f} | {a / b:.2f}x |")
    overhead = med[("selfsup", "encoder", "32-true")] / med[("selfsup", "step", "32-true")] - 1
    lines += ["", f"selfsup step overhead over its bare encoder forward + backward: {100 * overhead:.1f} %"]
    for precision in ([] if args.no_compile else ["32-true", "bf16-mixed"]):
        runs = results[("selfsup", "e2e-compile", precision)]
        compile_s = statistics.median(r["compile_s"] for r in runs)
        eager, compiled = med[("selfsup", "e2e", precision)], med[("selfsup", "e2e-compile", precision)]
        saved = 2 * BATCH / eager - 2 * BATCH / compiled  # seconds saved per step
        pays = f"after {compile_s / saved:.0f} steps" if saved > 0 else "never (no faster per step)"
        lines.append(f"torch.compile, {precision}: {compile_s:.0f} s to compile (median), "
                     f"{compiled / eager:.2f}x eager per step; pays for itself {pays}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
