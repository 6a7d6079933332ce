"""The ``selfsup`` command line: train | eval | embed | export | show-views | config | methods | recipes | datasets."""
from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
from pathlib import Path

PROBES = ("mlp", "finetune")  # beside kNN and linear, which always run
EXPORT_FORMATS = ("safetensors", "onnx", "torchvision", "timm")  # selfsup.models.formats.FORMATS, without importing torch
EXPECTED_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError, FloatingPointError)
ELSEWHERE = "set run.dir (train) or --out (export, embed) to a folder on another disk"
DISK_ERRORS = {  # OSErrors a user can cause and fix: errno -> the fix
    errno.ENOSPC: f"free space on that disk, or {ELSEWHERE}",
    errno.EDQUOT: f"free space within your quota, or {ELSEWHERE}",
    errno.EACCES: "fix the folder's permissions, or choose one you may write (run.dir, --out)",
    errno.EPERM: "fix the folder's permissions, or choose one you may write (run.dir, --out)",
    errno.EROFS: "that file system is read-only: choose a folder on a writable one (run.dir, --out)",
}


def split_recipe(args: list[str]) -> tuple[str | None, list[str]]:
    """``[RECIPE] [key=value ...]``: the first word without '=' is the recipe."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def cmd_train(ns: argparse.Namespace) -> int:
    from selfsup.engine.configure import compose_config
    from selfsup.engine.evaluate import evaluate_run
    from selfsup.engine.train import is_rank_zero, resume, train

    if ns.resume:
        if ns.args and "=" not in ns.args[0]:
            raise ValueError(f"--resume continues a run with its own recipe; drop {ns.args[0]!r}")
        run = resume(ns.resume, ns.args)
    else:
        recipe, overrides = split_recipe(ns.args)
        run = train(compose_config(recipe, overrides))
    if not is_rank_zero():
        return 0
    if run.cfg.eval.after_train:
        print(format_results(evaluate_run(run)))
    print(f"run folder: {run.dir}")
    return 0


def cmd_config(ns: argparse.Namespace) -> int:
    from selfsup.engine.configure import compose_config, describe_config

    recipe, overrides = split_recipe(ns.args)
    with contextlib.redirect_stdout(sys.stderr):  # notes on stderr: stdout is the YAML alone
        cfg = compose_config(recipe, overrides)
    print(describe_config(cfg), end="")
    return 0


def cmd_methods(ns: argparse.Namespace) -> int:
    from selfsup.engine.configure import method_paper
    from selfsup.methods import METHODS

    for name in METHODS.names():
        print(f"{name}\t{method_paper(METHODS.get(name))}")
    return 0


def format_results(results: dict) -> str:
    from selfsup.eval.report import fmt

    return "\n".join(f"{k:32s} {fmt(v)}" for k, v in results.items())


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def fraction_list(text: str) -> list[float]:
    try:
        fractions = [float(part) for part in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of fractions, e.g. 0.01,0.1") from None
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise argparse.ArgumentTypeError(f"label fractions must be in (0, 1], e.g. 0.01,0.1; got {text!r}")
    return fractions


def cmd_embed(ns: argparse.Namespace) -> int:
    from selfsup.engine.embed import embed_run, write_embeddings

    overrides = list(ns.overrides)
    if ns.data:
        overrides.append(f"data.name={ns.data}")
    if ns.root:
        overrides.append(f"data.root={ns.root}")
    features, columns = embed_run(ns.run_dir, overrides, ns.split)
    written = write_embeddings(Path(ns.out), features, columns)
    print(f"wrote {' and '.join(map(str, written))} ({features.shape[0]} samples x {features.shape[1]} features)")
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from selfsup.engine.run import Run
    from selfsup.models.formats import export_as

    written = export_as(Run.open(ns.run_dir).encoder_path, ns.format, ns.out)
    beside = f" and {written[1]} (normalisation, input shape, how to load it)" if len(written) > 1 else ""
    print(f"wrote {written[0]} ({ns.format}){beside}")
    return 0


def cmd_show_views(ns: argparse.Namespace) -> int:
    from selfsup.engine.configure import compose_config
    from selfsup.engine.show_views import save_view_grid

    recipe, overrides = split_recipe(ns.args)
    path = save_view_grid(compose_config(recipe, overrides), Path(ns.out), ns.samples)
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
    p.add_argument("--verbose", action="store_true",
                   help="Lightning's own messages and warnings, and a traceback for errors")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe, then evaluate it",
                       description="selfsup train [RECIPE] [key=value ...] | selfsup train --resume RUN_DIR [key=value ...]",
                       epilog="Every config key, its default and what it means: `selfsup config [RECIPE] [key=value ...]` "
                              "(the method's own keys included); recipes: `selfsup recipes`; methods: `selfsup methods`.")
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
                   help="a linear probe on every stage of the encoder, pooled by eval.layer_pooling "
                        "(layer.<stage>.<pooling>.linear.top1, plots/layers.png)")
    e.add_argument("--label-fraction", action="extend", type=fraction_list, default=[], metavar="F[,F...]",
                   help="low-shot linear probes on these class-balanced fractions of the labels, e.g. 0.01,0.1 "
                        "(lowshot.<percent>pct.linear.top1)")
    e.set_defaults(func=cmd_eval)

    m = sub.add_parser("embed", help="write the trained encoder's features of a dataset (.npy, .csv, .parquet)")
    m.add_argument("run_dir")
    m.add_argument("overrides", nargs="*", help="data.* overrides, e.g. data.root=... (default: the run's own data)")
    m.add_argument("--data", default=None, help="another registered dataset (see `selfsup datasets`); default the run's")
    m.add_argument("--root", default=None, help="data.root for datasets that need one")
    m.add_argument("--split", choices=["train", "test", "all"], default="all")
    m.add_argument("--out", required=True,
                   help="FILE.npy (+ FILE.rows.csv), FILE.csv or FILE.parquet: one row per sample with its path "
                        "(folder datasets) or index, label and split")
    m.set_defaults(func=cmd_embed)

    x = sub.add_parser("export", help="write the trained encoder as safetensors, ONNX, or a torchvision / timm state dict",
                       description="selfsup export RUN_DIR --format F --out FILE. The normalisation travels along: "
                                   "inside safetensors and ONNX (raw 0..1 inputs); for torchvision / timm in FILE's "
                                   ".json beside it, with the exact lines that load the state dict (strict=True).")
    x.add_argument("run_dir")
    x.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="torchvision and timm: resnet18/34/50 encoders (timm: timm:<name> ones too); "
                        "safetensors and onnx: every encoder")
    x.add_argument("--out", required=True, help="the file to write, e.g. encoder.onnx, resnet18.pth")
    x.set_defaults(func=cmd_export)

    v = sub.add_parser("show-views", help="save a PNG grid of augmented views of a few samples")
    v.add_argument("args", nargs="*", help="optional recipe, then key=value overrides")
    v.add_argument("--out", default="views.png")
    v.add_argument("--samples", type=positive_int, default=8, help="how many samples (rows of the grid)")
    v.set_defaults(func=cmd_show_views)

    c = sub.add_parser("config", help="print the fully resolved config (YAML, each key with its comment)",
                       description="selfsup config [RECIPE] [key=value ...]: what `selfsup train` with the same "
                                   "arguments would run")
    c.add_argument("args", nargs="*", help="optional recipe, then key=value overrides")
    c.set_defaults(func=cmd_config)
    ms = sub.add_parser("methods", help="list the methods with their paper, one a line")
    ms.set_defaults(func=cmd_methods)
    r = sub.add_parser("recipes", help="list the recipes, one a line")
    r.set_defaults(func=cmd_recipes)
    d = sub.add_parser("datasets", help="list the datasets, one a line")
    d.set_defaults(func=cmd_datasets)
    return p


class StdoutHandler(logging.StreamHandler):
    """selfsup's own log lines on whatever ``sys.stdout`` is now (progress bars go to stderr)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    if ns.verbose:
        os.environ["SELFSUP_VERBOSE"] = "1"
    logger = logging.getLogger("selfsup")
    if not any(isinstance(h, StdoutHandler) for h in logger.handlers):
        handler = StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return ns.func(ns)
    except EXPECTED_ERRORS as err:
        if os.environ.get("SELFSUP_DEBUG") or ns.verbose:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"selfsup: error: {message}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, permissions: one line naming the path, the need and the fix
        if err.errno not in DISK_ERRORS or os.environ.get("SELFSUP_DEBUG") or ns.verbose:
            raise
        where = err.filename or "a file selfsup writes"
        print(f"selfsup: error: {where}: {err.strerror or os.strerror(err.errno)}; {DISK_ERRORS[err.errno]}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
