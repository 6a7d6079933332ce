"""The ``selfsup`` command line: train | eval | embed | show-views | recipes | datasets."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

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

    results = evaluate_run(ns.run_dir, ns.overrides)
    print(format_results(results))
    print(f"wrote {Path(ns.run_dir) / 'eval.json'} and {Path(ns.run_dir) / 'report.md'}")
    return 0


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
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
