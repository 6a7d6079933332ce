"""Evaluation on frozen features: kNN, linear probe, diagnostics, report."""
from selfsup.eval.diagnostics import effective_rank, embedding_std
from selfsup.eval.knn import knn_accuracy, knn_predict, topk_accuracy
from selfsup.eval.linear import linear_probe_accuracy

__all__ = ["effective_rank", "embedding_std", "knn_accuracy", "knn_predict", "topk_accuracy", "linear_probe_accuracy"]
