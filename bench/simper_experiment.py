"""The SimPer experiment: does SimPer capture frequency where SimCLR does not?

On RotatingDigits (target: frequency, Hz) and on the heartpy PPG windows (target: heart rate,
bpm), three arms with the same encoder, data, batch size, optimiser and number of epochs:

- ``simper``: the recipe (simper-rotating-digits / simper-ppg) as it is;
- ``simclr``: the same recipe with ``method.name=simclr`` (two same-speed temporal crops per
  sequence with SimPer's invariant augmentations, projection head 256-64, temperature 0.5);
- ``supervised``: the same encoder trained to regress the standardised target (MSE) from one
  such crop per sequence, through a linear head, for the same epochs: the ceiling;

and the untrained encoder (``random_init``, from the SSL runs' baselines). Every arm is scored
the same way: ridge regression from frozen features (the series' power spectrum) of the full
sequences to the target, MAE / MAPE / R^2 on the test split (selfsup.eval.regression), mean ±
std over the seeds. Writes ``results.md`` (the table), ``results.json`` and each arm's
test-embedding plot (seed 0) to ``--out``.

CPU protocol (each run at most about 15 minutes on 2 cores; the deviations from the tutorial
are listed in the recipes): RotatingDigits clips of 60 frames at 15 fps, 20x20 px, 0.5-2.5
Hz, 500 training clips, M = 5 speeds of T = 20 frames, featurizer widths 16/32, 8 epochs;
PPG 10 s windows at 25 Hz, M = 5, T = 125, 20 epochs.

    python bench/simper_experiment.py                      # the whole experiment (CPU: about 2 hours)
    python bench/simper_experiment.py --tiny --seeds 0     # a smoke test of the script (a minute or two)
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from torch import nn

from selfsup.augment.temporal import TemporalPairViews
from selfsup.config.loading import build_config, parse_overrides, recipe_values
from selfsup.data import build_data, make_loader
from selfsup.engine.build import input_spec
from selfsup.engine.configure import resolve_config
from selfsup.engine.evaluate import capped, evaluate_run
from selfsup.engine.train import train
from selfsup.eval.features import as_float_inputs, extract_features
from selfsup.eval.layers import stage_features, stage_regression
from selfsup.eval.plots import embedding_by_target
from selfsup.eval.regression import regression_probe
from selfsup.models import build_encoder

RECIPES = {"rotating-digits": "simper-rotating-digits", "ppg-heartpy": "simper-ppg"}
SIMCLR = {"name": "simclr", "temperature": 0.5, "proj_hidden_dim": 256, "proj_dim": 64}
TINY = ["data.limit=40", "trainer.max_steps=3", "eval.limit=60", "eval.map_points=0", "data.batch_size=4",
        "model.width=4"]
METRICS = ("mae", "mape", "r2")
RECORD = "bench_record.json"  # a finished run's metrics and wall time


def ssl_arm(recipe: str, method: dict | None, seed: int, out: Path, extra: list[str], evaluations: list[str]) -> dict:
    values = recipe_values(recipe)
    if method is not None:
        values["method"] = dict(method)
    cfg = build_config(values, parse_overrides([f"seed={seed}", f"run.dir={out}", "trainer.enable_progress_bar=false",
                                                *extra]))
    results = evaluate_run(train(resolve_config(cfg)), (), evaluations)
    return {"results": results, "run_dir": str(out)}


def supervised_arm(recipe: str, seed: int, out: Path, extra: list[str], evaluations: list[str]) -> dict:
    """The encoder trained on the target itself, as many epochs as the SSL arms."""
    cfg = build_config(recipe_values(recipe), parse_overrides([f"seed={seed}", *extra]))
    splits = build_data(cfg.data, seed)
    name = splits.info["target"]
    L.seed_everything(seed, verbose=False)
    encoder = build_encoder(cfg.model, input_spec(splits), splits.mean, splits.std)
    head = nn.Linear(encoder.feature_dim, 1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=float(cfg.optim.lr))
    train_set = splits.train.take(torch.nonzero(splits.pretrain.labels >= 0).flatten())  # not the validation part
    target = train_set.targets[name]
    mean, std = target.mean(), target.std()
    views = TemporalPairViews(frames=cfg.method.get("frames"))
    g = torch.Generator().manual_seed(seed)
    max_steps = int(cfg.trainer.get("max_steps", -1))
    batch = min(int(cfg.data.batch_size), len(train_set))
    steps = 0
    for epoch in range(int(cfg.trainer.max_epochs)):
        for x, index in make_loader(_Indexed(train_set), batch, True, seed + epoch, drop_last=True):
            crop = views(as_float_inputs(x), g)[0]
            loss = nn.functional.mse_loss(head(encoder(crop)).squeeze(1), (target[index] - mean) / std)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == max_steps:
                break
        if steps == max_steps:
            break
    limit = cfg.eval.limit
    bank, test = capped(splits.train, limit, seed), capped(splits.test, limit, seed + 1)
    train_x, _ = extract_features(encoder, bank)
    test_x, _ = extract_features(encoder, test)
    metrics, _ = regression_probe(train_x, bank.targets[name], test_x, test.targets[name])
    results = {f"regression.{k}": v for k, v in metrics.items()}
    if "layers" in evaluations:
        batch_size = int(cfg.eval.batch_size)
        stages_bank, _ = stage_features(encoder, bank, batch_size, "cpu")
        stages_test, _ = stage_features(encoder, test, batch_size, "cpu")
        results.update(stage_regression(stages_bank, bank.targets[name], stages_test, test.targets[name]))
    out.mkdir(parents=True, exist_ok=True)
    embedding_by_target(test_x, test.targets[name], name, out / "plots" / f"embedding_{name}.png",
                        f"supervised on {name} (seed {seed})")
    return {"results": results, "run_dir": str(out)}


class _Indexed(torch.utils.data.Dataset):
    """A dataset's inputs with their indices instead of their labels (to look targets up)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices):
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return self.dataset.load(index), index


def stage_names(record: dict) -> list[str]:
    """The encoder stages a record has per-layer regression results for, in order."""
    return [k.split(".")[1] for k in record["results"] if k.startswith("layer.") and k.endswith(".regression.mae")]


def has_layers(record: dict, arm: str) -> bool:
    """Whether a finished run has the per-stage results: an SSL arm's with its random-init
    encoder's too (the supervised arm has no random-init baseline of its own)."""
    if arm == "supervised":
        return bool(stage_names(record))
    return any(k.startswith("random_init.layer.") for k in record["results"])


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description="SimPer vs SimCLR vs supervised on periodic targets")
    parser.add_argument("--datasets", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="bench/results/simper", help="runs already finished there are reused")
    parser.add_argument("--tiny", action="store_true", help="a few steps on a few samples: checks the script only")
    parser.add_argument("--layers", action="store_true",
                        help="also regress the target from every stage of the encoder, pooled over time and space")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every arm (e.g. trainer.max_epochs=200)")
    args = parser.parse_args()
    out = Path(args.out)
    extra = (TINY if args.tiny else []) + list(args.overrides)
    evaluations = ["layers"] if args.layers else []
    rows, stage_rows, raw = [], [], {}
    for dataset in args.datasets:
        recipe = RECIPES[dataset]
        arms: dict[str, list[dict]] = {"simper": [], "simclr": [], "supervised": [], "random_init": []}
        for seed in args.seeds:
            for arm in ("simper", "simclr", "supervised"):
                run_dir = out / "runs" / f"{dataset}-{arm}-{seed}"
                finished = run_dir / RECORD
                # resumable: a finished run is read back (and evaluated again when --layers is new to it)
                record = json.loads(finished.read_text()) if finished.exists() and not args.tiny else None
                if record is not None and evaluations and not has_layers(record, arm):
                    if arm == "supervised":
                        record = None  # its encoder is not kept: train it again
                    else:
                        record["results"] = evaluate_run(run_dir, (), evaluations)
                        finished.write_text(json.dumps(record, indent=1))
                if record is None:
                    if run_dir.exists():
                        shutil.rmtree(run_dir)
                    start = time.perf_counter()
                    if arm == "supervised":
                        record = supervised_arm(recipe, seed, run_dir, extra, evaluations)
                    else:
                        record = ssl_arm(recipe, SIMCLR if arm == "simclr" else None, seed, run_dir, extra,
                                         evaluations)
                    record["seconds"] = time.perf_counter() - start
                    finished.write_text(json.dumps(record, indent=1))
                print(f"{dataset} {arm} seed {seed}: {record['seconds']:.0f} s, "
                      + ", ".join(f"{k}={record['results'][f'regression.{k}']:.3f}" for k in METRICS), flush=True)
                arms[arm].append(record)
                if arm == "simper":
                    baseline = {k.removeprefix("random_init."): v for k, v in record["results"].items()
                                if k.startswith(("random_init.regression.", "random_init.layer."))}
                    arms["random_init"].append({"results": baseline, "seconds": 0.0})
                if seed == args.seeds[0]:
                    for plot in Path(run_dir, "plots").glob("embedding_*.png"):
                        if not plot.name.startswith("embedding_map"):
                            shutil.copy(plot, out / f"{dataset}-{arm}-{plot.name}")
        raw[dataset] = arms
        for arm, records in arms.items():
            cells = [summary([r["results"][f"regression.{k}"] for r in records]) for k in METRICS]
            minutes = statistics.mean(r["seconds"] for r in records) / 60
            rows.append(f"| {dataset} | {arm} | {' | '.join(cells)} | {minutes:.1f} |")
            for stage in stage_names(records[0]) if evaluations else []:
                cells = [summary([r["results"][f"layer.{stage}.regression.{k}"] for r in records]) for k in METRICS]
                stage_rows.append(f"| {dataset} | {arm} | {stage} | {' | '.join(cells)} |")
    table = ["| dataset | arm | MAE | MAPE % | R² | minutes / run |", "|---|---|---|---|---|---|", *rows]
    if stage_rows:
        table += ["", "Per stage, pooled over time and space (stage `series`: its T per-frame values) "
                  "instead of the series' spectrum:", "",
                  "| dataset | arm | stage | MAE | MAPE % | R² |", "|---|---|---|---|---|---|", *stage_rows]
    settings = f"Seeds {args.seeds}" + (f", overrides {' '.join(args.overrides)}" if args.overrides else "")
    text = "\n".join([f"{settings}{' (tiny budget: checks the script only)' if args.tiny else ''}.", "",
                      *table]) + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
