"""Linear probe: multinomial logistic regression on standardised frozen features."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def linear_probe_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    max_iter: int = 200,
    C: float = 1.0,
) -> float:
    """Top-1 accuracy of an L2-regularised multinomial logistic regression (scikit-learn,
    lbfgs) trained on standardised features of the labelled training samples.

    ``max_iter`` caps the solver for a bounded evaluation time; convergence warnings are
    silenced because a capped solver is the protocol, not an accident."""
    labelled = train_y >= 0
    scaler = StandardScaler().fit(train_x[labelled].numpy())
    clf = LogisticRegression(max_iter=max_iter, C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(train_x[labelled].numpy()), train_y[labelled].numpy())
    prediction = clf.predict(scaler.transform(test_x.numpy()))
    return float(np.mean(prediction == test_y.numpy()))
