"""Evaluation on frozen features: kNN, linear probe, diagnostics, report."""
from selfsup.eval.diagnostics import effective_rank, embedding_std
from selfsup.eval.knn import knn_accuracy, knn_predict, topk_accuracy
from selfsup.eval.linear import LinearProbeResult, linear_probe, linear_probe_accuracy
# the seed protocol of issue 4, each registered in EVALUATIONS: mlp, finetune, layers, lowshot
from selfsup.eval.finetune import finetune_accuracy
from selfsup.eval.layers import stage_features
from selfsup.eval.lowshot import lowshot_indices
from selfsup.eval.mlp import mlp_probe_accuracy

__all__ = ["effective_rank", "embedding_std", "knn_accuracy", "knn_predict", "topk_accuracy", "linear_probe_accuracy",
           "linear_probe", "LinearProbeResult",
           "finetune_accuracy", "stage_features", "lowshot_indices", "mlp_probe_accuracy"]
