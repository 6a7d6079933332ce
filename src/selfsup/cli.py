"""The ``selfsup`` command line: train | eval | embed | show-views | recipes | datasets."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

PROBES = ("mlp", "finetune")  # beside kNN and linear, which always run
EXPECTED_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError, FloatingPointError)


def split_recipe(args: list[str]) -> tuple[str | None, list[str]]:
    """``[RECIPE] [key=value ...]``: the first word without '=' is the recipe."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def cmd_train(ns: argparse.Namespace) -> int:
    from selfsup.config import load_config, load_run_config
    from selfsup.engine.evaluate import evaluate_run
    from selfsup.engine.train import is_rank_zero, resume, train

    if ns.resume:
        if ns.args and "=" not in ns.args[0]:
            raise ValueError(f"--resume continues a run with its own recipe; drop {ns.args[0]!r}")
        run_dir = resume(ns.resume, ns.args)
        cfg = load_run_config(run_dir)
    else:
        recipe, overrides = split_recipe(ns.args)
        cfg = load_config(recipe, overrides)
        run_dir = train(cfg)
        cfg = load_run_config(run_dir) if is_rank_zero() else cfg
    if not is_rank_zero():
        return 0
    if cfg.eval.after_train:
        results = evaluate_run(run_dir)
        print(format_results(results))
    print(f"run folder: {run_dir}")
    return 0


def format_results(results: dict) -> str:
    return "\n".join(f"{k:32s} {v:.4f}" for k, v in results.items())


def cmd_eval(ns: argparse.Namespace) -> int:
    from selfsup.engine.evaluate import evaluate_run

    evaluations = list(dict.fromkeys(ns.probe))  # --probe, --layers, --label-fraction combine freely
    if ns.layers:
        evaluations.append("layers")
    if ns.label_fraction:
        evaluations.append("lowshot")
    results = evaluate_run(ns.run_dir, ns.overrides, evaluations, {"label_fractions": ns.label_fraction})
    print(format_results(results))
    print(f"wrote {Path(ns.run_dir) / 'eval.json'} and {Path(ns.run_dir) / 'report.md'}")
    return 0


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def probe_list(text: str) -> list[str]:
    probes = comma_list(text)
    for probe in probes:
        if probe not in PROBES:
            raise argparse.ArgumentTypeError(f"unknown probe {probe!r}; valid: {', '.join(PROBES)}")
    return probes


def fraction_list(text: str) -> list[float]:
    try:
        fractions = [float(part) for part in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of fractions, e.g. 0.01,0.1") from None
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise argparse.ArgumentTypeError(f"label fractions must be in (0, 1], e.g. 0.01,0.1; got {text!r}")
    return fractions


def cmd_embed(ns: argparse.Namespace) -> int:
    import numpy as np

    from selfsup.config import DataConfig
    from selfsup.data import build_data
    from selfsup.eval.features import extract_features
    from selfsup.models import load_encoder

    encoder = load_encoder(ns.run_dir)
    splits = build_data(DataConfig(name=ns.data, root=ns.root), seed=0)
    dataset = {"train": splits.train, "test": splits.test}[ns.split]
    features, labels = extract_features(encoder, dataset)
    np.save(ns.out, features.numpy())
    np.save(Path(ns.out).with_suffix(".labels.npy"), labels.numpy())
    print(f"wrote {ns.out} ({features.shape[0]} x {features.shape[1]}) and its labels")
    return 0


def cmd_show_views(ns: argparse.Namespace) -> int:
    from selfsup.config import load_config
    from selfsup.engine.show_views import save_view_grid

    recipe, overrides = split_recipe(ns.args)
    path = save_view_grid(load_config(recipe, overrides), Path(ns.out), ns.samples)
    print(f"wrote {path}")
    return 0


def cmd_recipes(ns: argparse.Namespace) -> int:
    from selfsup.config import list_recipes

    for name, description in list_recipes().items():
        print(f"{name}\t{description}")
    return 0


def cmd_datasets(ns: argparse.Namespace) -> int:
    from selfsup.data import DATASETS

    for name in DATASETS.names():
        print(f"{name}\t{DATASETS.get(name).description}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="selfsup", description="Self-supervised representation learning.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe, then evaluate it",
                       description="selfsup train [RECIPE] [key=value ...] | selfsup train --resume RUN_DIR [key=value ...]")
    t.add_argument("args", nargs="*", help="optional recipe name (default simclr-fashion-mnist), then key=value overrides")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a run on frozen features (eval.json, report.md)")
    e.add_argument("run_dir")
    e.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.limit=1000")
    e.add_argument("--probe", action="extend", type=probe_list, default=[], metavar="mlp|finetune",
                   help="more probes beside kNN and linear: mlp (eval.json mlp.top1), finetune (finetune.top1); "
                        "comma-separated or repeated")
    e.add_argument("--layers", action="store_true",
                   help="a linear probe on every stage of the encoder (layer.<stage>.linear.top1, plots/layers.png)")
    e.add_argument("--label-fraction", action="extend", type=fraction_list, default=[], metavar="F[,F...]",
                   help="low-shot linear probes on these class-balanced fractions of the labels, e.g. 0.01,0.1 "
                        "(lowshot.<percent>pct.linear.top1)")
    e.set_defaults(func=cmd_eval)

    m = sub.add_parser("embed", help="write the features of a dataset to a .npy file")
    m.add_argument("run_dir")
    m.add_argument("--data", required=True, help="a registered dataset (see `selfsup datasets`)")
    m.add_argument("--root", default=None, help="data.root for datasets that need one")
    m.add_argument("--split", choices=["train", "test"], default="test")
    m.add_argument("--out", required=True, help="output .npy (labels go to <out>.labels.npy)")
    m.set_defaults(func=cmd_embed)

    v = sub.add_parser("show-views", help="save a PNG grid of augmented views of a few samples")
    v.add_argument("args", nargs="*", help="optional recipe, then key=value overrides")
    v.add_argument("--out", default="views.png")
    v.add_argument("--samples", type=int, default=8)
    v.set_defaults(func=cmd_show_views)

    r = sub.add_parser("recipes", help="list the recipes, one a line")
    r.set_defaults(func=cmd_recipes)
    d = sub.add_parser("datasets", help="list the datasets, one a line")
    d.set_defaults(func=cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("selfsup").addHandler(handler)
    logging.getLogger("selfsup").setLevel(logging.INFO)
    ns = parser().parse_args(argv)
    try:
        return ns.func(ns)
    except EXPECTED_ERRORS as err:
        if os.environ.get("SELFSUP_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"selfsup: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
