"""``selfsup eval RUN_DIR``: evaluate a run folder (probes from selfsup.eval) into eval.json + report.md.

eval.json is merged, never replaced: an evaluation writes the keys it computed and keeps the
others; eval_protocol.json records for every key how it was computed (the evaluation, the
checkpoint step, the bank and test sizes, ``eval.limit``)."""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Iterable, Sequence

import torch

from selfsup.data.base import IndexedDataset
from selfsup.data.splits import stratified_indices
from selfsup.engine.build import build_method
from selfsup.engine.checkpoint import load_checkpoint_file
from selfsup.engine.run import Run, read_json, write_json
from selfsup.eval.context import EvalContext
from selfsup.eval.label_gate import NEEDS_CLASS_LABELS, class_label_gap, online_probe_gap
from selfsup.eval.registry import EVALUATIONS
from selfsup.eval.report import write_report
from selfsup.methods import Method

log = logging.getLogger(__name__)
STANDARD = ("knn", "linear", "unsupervised")
METHOD_PREFIX = "method."


def capped(dataset: IndexedDataset, limit: int | None, seed: int) -> IndexedDataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.take(stratified_indices(dataset.labels, limit, seed))


def load_trained_method(method: Method, run: Run | str | Path) -> Method:
    """``method`` (encoder, heads, and e.g. ContextSSL's transformer) with the weights of the
    run's last checkpoint, in eval mode."""
    path = run.checkpoint_path if isinstance(run, Run) else Path(run) / "checkpoints" / "last.ckpt"
    state = load_checkpoint_file(path)["state_dict"]
    method.load_state_dict({k[len(METHOD_PREFIX):]: v for k, v in state.items() if k.startswith(METHOD_PREFIX)})
    return method.eval()


def evaluate_run(
    run: Run | str | Path,
    overrides: Sequence[str] = (),
    evaluations: Iterable[str] = (),
    options: dict | None = None,
) -> dict:
    """Evaluate the run's trained encoder (and the baselines) with the standard protocol plus
    the named ``evaluations`` (and those its method declares); merges the results into
    RUN_DIR/eval.json, writes report.md and returns this evaluation's results."""
    run = Run.open(run, overrides)
    with run.writing():
        return evaluate(run, evaluations, options)


def evaluate(run: Run, evaluations: Iterable[str], options: dict | None) -> dict:
    cfg, seed = run.cfg, int(run.cfg.seed)
    splits = run.splits()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # seeded, model.init not loaded: random_init is the seeded random init even for a run started from weights
    method = build_method(cfg, splits, init_weights=False)
    encoders = {"random_init": copy.deepcopy(method.encoder).eval()} if cfg.eval.baselines else {}
    encoders["trained"] = load_trained_method(method, run).encoder
    ctx = EvalContext(
        cfg=cfg, run_dir=run.dir, splits=splits,
        bank=capped(splits.train, cfg.eval.limit, seed), test=capped(splits.test, cfg.eval.limit, seed + 1),
        encoders=encoders, device=device, options=dict(options or {}), method=method,
    )
    data_evaluations = ("regression",) if splits.info.get("target") else ()  # datasets with a continuous target
    names = list(dict.fromkeys([*STANDARD, *data_evaluations, *type(method).evaluations, *evaluations]))
    gap = class_label_gap(ctx.bank.labels, ctx.test.labels)  # why probes on class labels cannot run, or None
    results: dict = {}
    protocol: dict = {}
    step = run.checkpoint_step()
    if online_probe_gap(splits.pretrain.labels) is not None:
        results["skipped.online_probe"] = online_probe_gap(splits.pretrain.labels)
    for i, name in enumerate(names, 1):
        if gap is not None and name in NEEDS_CLASS_LABELS:
            log.info("skipping %d/%d: %s (%s)", i, len(names), name, gap)
            out = {f"skipped.{name}": gap}
        else:
            log.info("evaluating %d/%d: %s", i, len(names), name)
            out = {k: v if isinstance(v, str) else float(v) for k, v in EVALUATIONS.get(name).run(ctx).items()}
        results.update(out)
        stamp = {"evaluation": name, "step": step, "bank": len(ctx.bank), "test": len(ctx.test),
                 "limit": cfg.eval.limit, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
        protocol.update({key: stamp for key in out})
    # a skip of an earlier evaluation is dropped when this one ran the probe again
    kept = {k: v for k, v in read_json(run.eval_path).items() if not (k.startswith("skipped.") and k[8:].split(".")[0] in names)}
    merged = {**kept, **results}
    write_json(run.eval_path, dict(sorted(merged.items())))
    write_json(run.dir / "eval_protocol.json", {**read_json(run.dir / "eval_protocol.json"), **protocol})
    # every evaluation's report section, each shown when eval.json holds its keys (from this run or an earlier one)
    write_report(ctx, merged, [EVALUATIONS.get(name) for name in EVALUATIONS.names()], run.training())
    return dict(sorted(results.items()))
