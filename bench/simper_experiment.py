"""The SimPer experiment, the paper's comparison: does SimPer capture frequency where SimCLR does not?

On RotatingDigits (target: frequency, Hz) and on the heartpy PPG windows (target: heart rate,
bpm), five arms with the same encoder, data, batch size, optimiser and number of epochs:

- ``simper``: the recipe (simper-rotating-digits / simper-ppg) as it is;
- ``simclr``: SimCLR as SimPer's paper trains it, the same recipe with ``method.name=simclr``
  and ``method.embedding=clip``: NT-Xent on the encoder's pooled clip embedding (the stage
  before the one-channel head, averaged over time and space) through a projection head 256-64,
  temperature 0.5, two same-speed temporal crops per sequence with SimPer's invariant
  augmentations; no periodic similarity anywhere;
- ``simclr-spectrum``: "SimCLR + periodic readout", the same with ``method.embedding=spectrum``
  (NT-Xent on the unit-norm power spectrum of the per-frame series: SimPer's periodic
  inductive bias handed to the baseline);
- ``supervised``: the same encoder trained to regress the standardised target (MSE) from one
  such crop per sequence, through a linear head on its spectrum, for the same epochs: the ceiling;
- ``random-init``: the untrained encoder (the simper runs' random-init baseline, same seed).

Every arm is scored by the same four readouts on the test split (selfsup.eval.regression and
selfsup.eval.finetune), MAE / MAPE / R^2, mean ± std over the seeds: the spectral probe (ridge
regression from the series' power spectrum of the full sequence), the pooled clip embedding
(ridge), a linear head on the raw per-frame series (ridge on its T values: the released code's
``Dense(1)`` input), and fine-tuning (the whole encoder with that ``Dense(1)`` head, MSE, Adam
1e-3, 5 epochs over the bank). Writes ``results.md`` (the table), ``results.json`` and each
arm's Fig.-1-style plots of seed 0 (test embeddings ordered and coloured by the target: the
encoder feature and the pooled clip embedding) to ``--out``.

CPU protocol (the deviations from the tutorial are listed in the recipes): RotatingDigits clips
of 60 frames at 15 fps, 20x20 px, 0.5-2.5 Hz, 500 training clips, M = 5 speeds of T = 20 frames,
featurizer widths 16/32, 8 epochs; PPG 10 s windows at 25 Hz, M = 5, T = 125, 20 epochs.

    python bench/simper_experiment.py                                   # the whole experiment, 3 seeds
    python bench/simper_experiment.py --tiny --seeds 0 --datasets rotating-digits   # a smoke test (minutes)
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
from selfsup.eval.finetune import finetune_regression
from selfsup.eval.layers import stage_features, stage_regression
from selfsup.eval.plots import embedding_by_target
from selfsup.eval.regression import readout_features, readout_regression, regression_probe
from selfsup.models import build_encoder

RECIPES = {"rotating-digits": "simper-rotating-digits", "ppg-heartpy": "simper-ppg"}
SIMCLR = {"name": "simclr", "temperature": 0.5, "proj_hidden_dim": 256, "proj_dim": 64}
SSL_ARMS = {"simper": None, "simclr": {**SIMCLR, "embedding": "clip"}, "simclr-spectrum": {**SIMCLR, "embedding": "spectrum"}}
ARMS = [*SSL_ARMS, "supervised", "random-init"]
# (table header, eval.json key) of the four readouts; each key takes a metric name
READOUTS = [("spectral probe", "regression.{}"), ("pooled clip embedding", "regression.clip.{}"),
            ("linear head on the series", "regression.series.{}"), ("fine-tuned", "finetune.regression.{}")]
TINY = ["data.limit=40", "trainer.max_steps=3", "eval.limit=60", "eval.map_points=0", "data.batch_size=4",
        "model.width=4"]
METRICS = ("mae", "mape", "r2")
RECORD = "bench_record.json"  # a finished run's arm, metrics and wall time


def arm_settings(arm: str, extra: list[str]) -> dict:
    """What a finished record must have been run with to be reused."""
    return {"arm": arm, "method": SSL_ARMS.get(arm), "overrides": extra}


def ssl_arm(recipe: str, method: dict | None, seed: int, out: Path, extra: list[str], evaluations: list[str],
            baselines: bool) -> dict:
    values = recipe_values(recipe)
    if method is not None:
        values["method"] = dict(method)
    cfg = build_config(values, parse_overrides([f"seed={seed}", f"run.dir={out}", "trainer.enable_progress_bar=false",
                                                f"eval.baselines={str(baselines).lower()}", *extra]))
    results = evaluate_run(train(resolve_config(cfg)), (), ["finetune", *evaluations])
    return {"results": results, "run_dir": str(out)}


def supervised_arm(recipe: str, seed: int, out: Path, extra: list[str], evaluations: list[str]) -> dict:
    """The encoder trained on the target itself, as many epochs as the SSL arms, then scored by
    the same readouts."""
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
        for x, index in make_loader(train_set.with_labels(torch.arange(len(train_set))), batch, True, seed + epoch, drop_last=True):
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
    batch_size = int(cfg.eval.batch_size)
    train_x, _ = extract_features(encoder, bank, batch_size)
    test_x, _ = extract_features(encoder, test, batch_size)
    metrics, _ = regression_probe(train_x, bank.targets[name], test_x, test.targets[name])
    results = {f"regression.{k}": v for k, v in metrics.items()}
    results.update(readout_regression(encoder, bank, test, name, batch_size))
    tuned = finetune_regression(encoder, bank, bank.targets[name], test, test.targets[name], seed=seed)
    results.update({f"finetune.regression.{k}": v for k, v in tuned.items()})
    if "layers" in evaluations:
        stages_bank, _ = stage_features(encoder, bank, batch_size, "cpu")
        stages_test, _ = stage_features(encoder, test, batch_size, "cpu")
        results.update(stage_regression(stages_bank, bank.targets[name], stages_test, test.targets[name]))
    plots = {"": test_x, "_clip": readout_features(encoder.eval(), test, batch_size)["clip"]}
    for kind, features in plots.items():
        what = "pooled clip embeddings" if kind else "test embeddings"
        embedding_by_target(features, test.targets[name], name, out / "plots" / f"embedding_{name}{kind}.png",
                            f"supervised on {name} (seed {seed}): {what} by {name}")
    return {"results": results, "run_dir": str(out)}


def stage_names(record: dict) -> list[str]:
    """The encoder stages a record has per-layer regression results for, in order."""
    suffix = ".regression.mae"  # layer.<stage>[.<pooling>].regression.mae
    return list(dict.fromkeys(k[len("layer."):-len(suffix)] for k in record["results"]
                              if k.startswith("layer.") and k.endswith(suffix)))


def reusable(record: dict | None, arm: str, extra: list[str], evaluations: list[str]) -> bool:
    """Whether a finished run answers this experiment: the same arm settings, every readout,
    the per-stage results when asked for (the simper arm's with its random-init encoder's too)."""
    if record is None or record.get("settings") != arm_settings(arm, extra):
        return False
    keys = record["results"]
    if arm == "simper" and not all(f"random_init.{key.format('mae')}" in keys for _, key in READOUTS):
        return False
    if not all(key.format("mae") in keys for _, key in READOUTS):
        return False
    return not evaluations or bool(stage_names(record))


def random_init_record(simper: dict) -> dict:
    """The random-init arm: the simper run's untrained-encoder baseline, unprefixed."""
    return {"results": {k.removeprefix("random_init."): v for k, v in simper["results"].items()
                        if k.startswith("random_init.")}, "seconds": 0.0}


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def cell(records: list[dict], key: str) -> str:
    values = [r["results"].get(key) for r in records]
    return "-" if any(v is None for v in values) else summary(values)


def main() -> None:
    parser = argparse.ArgumentParser(description="SimPer vs SimCLR (clip and spectrum) vs supervised vs random init "
                                                 "on periodic targets, four readouts each")
    parser.add_argument("--datasets", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="bench/results/simper", help="runs already finished there are reused")
    parser.add_argument("--tiny", action="store_true", help="a few steps on a few samples: checks the script only")
    parser.add_argument("--layers", action="store_true",
                        help="also regress the target from every stage of the encoder, pooled over time and space")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every arm (e.g. trainer.max_epochs=200)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = (TINY if args.tiny else []) + list(args.overrides)
    evaluations = ["layers"] if args.layers else []
    rows, stage_rows, raw = [], [], {}
    for dataset in args.datasets:
        recipe = RECIPES[dataset]
        arms: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        for seed in args.seeds:
            for arm in ARMS[:-1]:
                run_dir = out / "runs" / f"{dataset}-{arm}-{seed}"
                finished = run_dir / RECORD
                record = json.loads(finished.read_text()) if finished.exists() and not args.tiny else None
                if not reusable(record, arm, extra, evaluations):
                    if run_dir.exists():
                        shutil.rmtree(run_dir)
                    start = time.perf_counter()
                    if arm == "supervised":
                        record = supervised_arm(recipe, seed, run_dir, extra, evaluations)
                    else:  # the random-init baseline comes with the simper run only
                        record = ssl_arm(recipe, SSL_ARMS[arm], seed, run_dir, extra, evaluations, arm == "simper")
                    record["seconds"] = time.perf_counter() - start
                    record["settings"] = arm_settings(arm, extra)
                    finished.write_text(json.dumps(record, indent=1))
                print(f"{dataset} {arm} seed {seed}: {record['seconds']:.0f} s, "
                      + ", ".join(f"{label} R² {record['results'].get(key.format('r2'), float('nan')):.3f}"
                                  for label, key in READOUTS), flush=True)
                arms[arm].append(record)
                if arm == "simper":
                    arms["random-init"].append(random_init_record(record))
                if seed == args.seeds[0]:
                    for plot in Path(run_dir, "plots").glob("embedding_*.png"):
                        if plot.name.startswith("embedding_map"):
                            continue
                        if plot.stem.endswith("_random_init"):
                            shutil.copy(plot, out / f"{dataset}-random-init-{plot.name.replace('_random_init', '')}")
                        else:
                            shutil.copy(plot, out / f"{dataset}-{arm}-{plot.name}")
        raw[dataset] = arms
        for arm, records in arms.items():
            cells = [f"{cell(records, key.format('mae'))} / {cell(records, key.format('r2'))}" for _, key in READOUTS]
            minutes = statistics.mean(r["seconds"] for r in records) / 60
            rows.append(f"| {dataset} | {arm} | {' | '.join(cells)} | {minutes:.1f} |")
            for stage in stage_names(records[0]) if evaluations else []:
                cells = [cell(records, f"layer.{stage}.regression.{k}") for k in METRICS]
                stage_rows.append(f"| {dataset} | {arm} | {stage} | {' | '.join(cells)} |")
    table = ["| dataset | arm | " + " | ".join(f"{label} MAE / R²" for label, _ in READOUTS) + " | minutes / run |",
             "|---|---|" + "---|" * (len(READOUTS) + 1), *rows]
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
