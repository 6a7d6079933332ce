"""``selfsup eval RUN_DIR``: evaluate a run folder (probes from selfsup.eval) into eval.json + report.md."""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Iterable, Sequence

import torch
from selfsup.config.loading import build_config, parse_overrides, read_yaml
from selfsup.data import build_data
from selfsup.data.base import IndexedDataset
from selfsup.data.splits import stratified_indices
from selfsup.engine.build import build_method
from selfsup.engine.checkpoint import load_checkpoint_file
from selfsup.engine.run_dir import checkpoint_path, write_json
from selfsup.eval import standard as _standard  # noqa: F401  (registers knn and linear)
from selfsup.eval import regression as _regression  # noqa: F401  (registers regression)
from selfsup.eval.context import EVALUATIONS, EvalContext
from selfsup.eval.report import write_report
from selfsup.methods import Method

log = logging.getLogger(__name__)
STANDARD = ("knn", "linear")
METHOD_PREFIX = "method."


def capped(dataset: IndexedDataset, limit: int | None, seed: int) -> IndexedDataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.take(stratified_indices(dataset.labels, limit, seed))


def load_trained_method(method: Method, run_dir: Path) -> Method:
    """``method`` (encoder, heads, and e.g. ContextSSL's transformer) with the weights of the
    run's last checkpoint, in eval mode."""
    state = load_checkpoint_file(checkpoint_path(run_dir))["state_dict"]
    method.load_state_dict({k[len(METHOD_PREFIX):]: v for k, v in state.items() if k.startswith(METHOD_PREFIX)})
    return method.eval()


def evaluate_run(
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    evaluations: Iterable[str] = (),
    options: dict | None = None,
) -> dict:
    """Evaluate the run's trained encoder (and the baselines) with the standard protocol plus
    the named ``evaluations`` (and those its method asks for); writes RUN_DIR/eval.json and
    report.md and returns the results."""
    run_dir = Path(run_dir)
    cfg = build_config(read_yaml(run_dir / "config.yaml"), parse_overrides(overrides))
    seed = int(cfg.seed)
    splits = build_data(cfg.data, seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    method = build_method(cfg, splits)  # seeded: its encoder is the trained one's initialisation
    encoders = {"random_init": copy.deepcopy(method.encoder).eval()} if cfg.eval.baselines else {}
    encoders["trained"] = load_trained_method(method, run_dir).encoder
    ctx = EvalContext(
        cfg=cfg, run_dir=run_dir, splits=splits,
        bank=capped(splits.train, cfg.eval.limit, seed), test=capped(splits.test, cfg.eval.limit, seed + 1),
        encoders=encoders, device=device, options=dict(options or {}), method=method,
    )
    method_evaluations = getattr(method, "evaluations", ())
    data_evaluations = ("regression",) if splits.info.get("target") else ()  # datasets with a continuous target
    names = list(dict.fromkeys([*STANDARD, *data_evaluations, *method_evaluations, *evaluations]))
    results: dict = {}
    for name in names:
        log.info("evaluating: %s", name)
        results.update(EVALUATIONS.get(name)(ctx))
    results = {k: float(v) for k, v in sorted(results.items())}
    write_json(run_dir / "eval.json", results)
    write_report(ctx, results)
    return results
