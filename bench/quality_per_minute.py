"""Quality per minute of training: selfsup's default job against lightly's SimCLR, on the same
data (Fashion-MNIST, the default recipe's 60,000 training images), the same training wall
time and, arm by arm, the same encoder; kNN and linear top-1 on the full test set, over seeds.

    python bench/quality_per_minute.py [--minutes 4] [--seeds 0 1] [--arms ...]
        [--out bench/results/quality-per-minute]

Arms, each in a process of its own, one after another (alternating the libraries), every one with
the machine's threads and nothing else running:

- ``selfsup``: ``selfsup train`` with the default recipe (simclr-fashion-mnist: convnet-small
  width 32, batch 256, batched on-device views, ``trainer.precision=auto``) and
  ``trainer.max_time`` = the budget: selfsup as its users get it, its own default encoder;
- ``lightly``: lightly's SimCLR example (``SimCLRTransform`` in a torch DataLoader with CPU-count
  workers, ``SimCLRProjectionHead``, ``NTXentLoss``, a plain PyTorch loop in fp32) on selfsup's
  default encoder with the default recipe's settings, so that only the library differs: batch
  256, 2 views, crops from 20 % of the area, colour jitter 0.5 (greyscale: brightness and
  contrast), no blur, projection 512 -> 128, temperature 0.5, SGD lr 0.3 momentum 0.9 weight
  decay 5e-4, half an epoch of linear warm-up then a cosine to 0 over the steps that fit the
  budget (planned from the speed of the steps so far, again after every epoch);
- ``lightly-resnet18``: the same loop with lightly's example encoder, torchvision's ResNet-18
  (its standard stem, as the example builds it; 512 features) and the example's head
  (512 -> 512 -> 128): lightly with its own default encoder;
- ``selfsup-resnet18``: selfsup's default job on that ResNet-18 (``model.encoder=resnet18
  model.cifar_stem=false``), the same-encoder pair of the last arm.

lightly's example trains on 32 px RGB CIFAR-10 with SGD lr 0.06 and no schedule; here its images
are the Fashion-MNIST ones as RGB (``convert("RGB")``) at their own 28 px with the recipe's
optimiser and schedule above, which trains better in a short budget than the example's constant
0.06 without momentum.

Every arm's encoder is evaluated by the same code here: its features (fp32, eval mode) of the
60,000 training images (the bank) and the 10,000 test images, selfsup's weighted kNN (k 200,
T 0.1) and its linear probe (L2 chosen on a validation split of the bank). The selfsup arms'
own evaluation is switched off (``eval.after_train=false``). Training wall time: selfsup's is
Lightning's fit (its per-epoch validation of the online probe included), lightly's the loop's;
each arm's steps and images seen are in the table. Writes OUT/table.md and OUT/table.json; a
finished arm (OUT/<arm>-<seconds>s-seed<S>/result.json) is skipped when the script runs again.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ARMS = ["selfsup", "lightly", "lightly-resnet18", "selfsup-resnet18"]
RESNET18 = ["model.encoder=resnet18", "model.cifar_stem=false"]
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}  # SimCLRTransform's normalisation


def recipe_config(extra: list[str]):
    from selfsup.engine.configure import compose_config

    return compose_config(None, extra)


# ---------------------------------------------------------------- selfsup arms
def train_selfsup(run_dir: Path, seed: int, seconds: int, extra: list[str]):
    """`selfsup train` (the default recipe) for ``seconds``; returns (encoder, steps, images seen,
    Lightning's fit wall time from training.json)."""
    from compute_budget import budget_overrides
    from selfsup.models.export import load_encoder

    command = [sys.executable, "-m", "selfsup", "train", f"seed={seed}", f"run.dir={run_dir / 'run'}",
               "eval.after_train=false", "trainer.enable_progress_bar=false", *extra,
               *[o for o in budget_overrides("simclr-fashion-mnist", "time", seconds) if "max_epochs" not in o]]
    subprocess.run(command, check=True)
    training = json.loads((run_dir / "run" / "training.json").read_text())
    return load_encoder(run_dir / "run"), training["steps"], training["samples_seen"], training["wall_time_s"]


# ---------------------------------------------------------------- lightly arms
def lightly_backbone(arm: str, splits):
    """(backbone taking 3-channel normalised images, its feature width)."""
    import torchvision

    if arm == "lightly-resnet18":
        resnet = torchvision.models.resnet18()
        return nn.Sequential(*list(resnet.children())[:-1]), 512
    from selfsup.models.encoders import InputSpec, make_backbone

    cfg = recipe_config([])
    backbone = make_backbone(cfg.model, InputSpec(3, (3, *splits.input_shape[-2:])))
    return backbone, backbone.feature_dim


def train_lightly(arm: str, splits, seed: int, seconds: int):
    """lightly's SimCLR loop for ``seconds`` of training; returns (encoder, steps, images seen, the
    loop's wall time)."""
    import numpy as np
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from PIL import Image

    from selfsup.engine.optim import warmup_cosine
    from selfsup.models.encoders import Encoder

    cfg = recipe_config([])
    torch.manual_seed(seed)
    images = splits.pretrain.load(torch.arange(len(splits.pretrain)))[:, 0].numpy()  # [N, H, W] uint8
    transform = SimCLRTransform(input_size=images.shape[-1], cj_strength=float(cfg.augment.jitter_strength),
                                min_scale=float(cfg.augment.crop_scale[0]), gaussian_blur=0.0, normalize=IMAGENET)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(Image.fromarray(np.asarray(images[i])).convert("RGB")), 0

    backbone, width = lightly_backbone(arm, splits)
    hidden = int(cfg.method.proj_hidden_dim)
    model = nn.Sequential(backbone, nn.Flatten(1), SimCLRProjectionHead(width, hidden, int(cfg.method.proj_dim)))
    criterion = NTXentLoss(temperature=float(cfg.method.temperature))
    optimizer = torch.optim.SGD(model.parameters(), lr=float(cfg.optim.lr), momentum=float(cfg.optim.momentum),
                                weight_decay=float(cfg.optim.weight_decay))
    batch = int(cfg.data.batch_size)
    loader = torch.utils.data.DataLoader(Images(), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=os.cpu_count(), persistent_workers=True,
                                         generator=torch.Generator().manual_seed(seed))
    steps_per_epoch = len(loader)
    warmup = round(float(cfg.optim.warmup_epochs) * steps_per_epoch)
    start, step, planned = time.perf_counter(), 0, None
    while planned is None or step < planned:
        for (x0, x1), _ in loader:
            elapsed = time.perf_counter() - start
            if elapsed >= seconds or (planned is not None and step >= planned):
                break
            if step == 10 or (step > 10 and step % steps_per_epoch == 0):  # plan from the speed so far
                planned = max(step + 1, math.floor(seconds * step / elapsed))
            for group in optimizer.param_groups:
                group["lr"] = float(cfg.optim.lr) * warmup_cosine(step, planned or 10**9, warmup, 0.0)
            loss = criterion(model(x0), model(x1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"{arm}: the loss is {loss.item()} at step {step}")
        else:
            continue
        break
    # what lightly's encoder sees in evaluation: the 0..1 images normalised as SimCLRTransform does
    # (a greyscale image broadcasts against the 3-channel statistics: its RGB conversion)
    encoder = Encoder(nn.Sequential(backbone, nn.Flatten(1)), IMAGENET["mean"], IMAGENET["std"])
    return encoder, step, step * batch, time.perf_counter() - start


# ---------------------------------------------------------------- one arm, then the table
def evaluate(encoder, splits) -> dict:
    from selfsup.eval.features import extract_features
    from selfsup.eval.knn import knn_accuracy
    from selfsup.eval.linear import linear_probe

    bank_x, bank_y = extract_features(encoder, splits.train)
    test_x, test_y = extract_features(encoder, splits.test)
    knn = knn_accuracy(bank_x, bank_y, test_x, test_y, splits.num_classes, 200, 0.1)[1]
    linear = linear_probe(bank_x, bank_y, test_x, test_y)
    return {"knn": knn, "linear": linear.accuracy, "linear_l2": linear.l2, "bank": len(bank_y), "test": len(test_y)}


def run_arm(arm: str, seed: int, seconds: int, out: Path) -> None:
    from selfsup.data.build import build_data

    out.mkdir(parents=True, exist_ok=True)
    splits = build_data(recipe_config([]).data, seed)
    if arm.startswith("selfsup"):
        encoder, steps, seen, train_s = train_selfsup(out, seed, seconds, RESNET18 if arm == "selfsup-resnet18" else [])
    else:
        encoder, steps, seen, train_s = train_lightly(arm, splits, seed, seconds)
    trained = time.perf_counter()
    result = {"arm": arm, "seed": seed, "budget_s": seconds, "train_wall_s": train_s, "steps": steps,
              "images_seen": seen, "threads": torch.get_num_threads(),
              "peak_rss_mb": max(resource.getrusage(who).ru_maxrss for who in
                                 (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024,
              **evaluate(encoder, splits), "eval_s": time.perf_counter() - trained}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)


def mean_sd(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(results: dict[str, list[dict]], seconds: int) -> str:
    lines = [f"Fashion-MNIST, {seconds} s of training per run, kNN (k 200) and linear top-1 in % on the 10,000 "
             "test images (bank: the 60,000 training images), mean ± sd over seeds", "",
             "| arm | encoder | kNN top-1 | linear top-1 | steps | images seen | train wall s | peak RSS MB | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    encoders = {"selfsup": "convnet-small w32", "lightly": "convnet-small w32", "lightly-resnet18": "ResNet-18",
                "selfsup-resnet18": "ResNet-18"}
    for arm, rs in results.items():
        if rs:
            lines.append(f"| {arm} | {encoders[arm]} | {mean_sd([r['knn'] for r in rs])} | "
                         f"{mean_sd([r['linear'] for r in rs])} | {mean_sd([r['steps'] for r in rs], 1, 0)} | "
                         f"{mean_sd([r['images_seen'] for r in rs], 1, 0)} | "
                         f"{mean_sd([r['train_wall_s'] for r in rs], 1, 0)} | "
                         f"{mean_sd([r['peak_rss_mb'] for r in rs], 1, 0)} | {len(rs)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training wall time per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--out", type=Path, default=Path("bench/results/quality-per-minute"))
    parser.add_argument("--child", nargs=2, metavar=("ARM", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = round(args.minutes * 60)
    if args.child:
        arm, seed = args.child[0], int(args.child[1])
        run_arm(arm, seed, seconds, args.out / f"{arm}-{seconds}s-seed{seed}")
        return 0
    results: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    for i, seed in enumerate(args.seeds):
        for arm in (args.arms if i % 2 == 0 else args.arms[::-1]):  # alternate which library runs first
            done = args.out / f"{arm}-{seconds}s-seed{seed}" / "result.json"
            if not done.exists():
                print(f"== {arm} seed {seed}", flush=True)
                child = [sys.executable, __file__, "--child", arm, str(seed), "--minutes", str(args.minutes),
                         "--out", str(args.out)]
                if subprocess.run(child).returncode != 0:
                    print(f"!! {arm} seed {seed} failed; left out of the table (run again to retry)", flush=True)
                    continue
            results[arm].append(json.loads(done.read_text()))
    text = table(results, seconds)
    (args.out / "table.md").write_text(text)
    (args.out / "table.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
