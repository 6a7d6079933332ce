"""The evaluation registry: every evaluation a run can get, by name, in one table.

An entry is an :class:`Evaluation`: ``run(ctx) -> {eval.json key: value}`` and, optionally,
``report(ctx, results) -> markdown`` (its section of report.md, written when it ran).
``selfsup eval`` runs ``knn``, ``linear`` and ``unsupervised`` (no labels needed) always, ``regression`` on data with a continuous
target, those a method declares in ``Method.evaluations``, and those asked for on the command
line (``--probe``, ``--layers``, ``--label-fraction``). Those in
:data:`selfsup.eval.label_gate.NEEDS_CLASS_LABELS` are skipped, with ``skipped.<name>`` = the
reason in eval.json, on data without two labelled classes in the bank or labelled test samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from selfsup.core.registry import Registry


@dataclass(frozen=True)
class Evaluation:
    run: Callable[[Any], dict]  # EvalContext -> flat results
    report: Optional[Callable[[Any, dict], str]] = None  # (EvalContext, all results) -> markdown section


EVALUATIONS: Registry[Evaluation] = Registry("evaluation", {
    "knn": "selfsup.eval.standard:KNN",
    "linear": "selfsup.eval.standard:LINEAR",
    "regression": "selfsup.eval.regression:REGRESSION",
    "mlp": "selfsup.eval.mlp:MLP",
    "finetune": "selfsup.eval.finetune:FINETUNE",
    "lowshot": "selfsup.eval.lowshot:LOWSHOT",
    "layers": "selfsup.eval.layers:LAYERS",
    "equivariance": "selfsup.eval.contextual:EQUIVARIANCE",
    "contextssl": "selfsup.eval.contextual:CONTEXTSSL",
    "unsupervised": "selfsup.eval.unsupervised:UNSUPERVISED",
})
