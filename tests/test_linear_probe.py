"""The torch L-BFGS linear probe against scikit-learn's LogisticRegression (an independent
solver of the same penalised likelihood, run to a tight tolerance), and its protocol: the L2
strength is chosen on the validation split alone, convergence is reported, and the probe learns
what the labels carry and nothing when they carry nothing."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from selfsup.eval.linear import fit_logistic, linear_probe, linear_probe_accuracy, objective


def blobs(n: int, d: int, k: int, spread: float, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g, dtype=dtype) * spread
    y = torch.randint(0, k, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g, dtype=dtype), y


def standardised(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0, unbiased=False)


def softmax_probabilities(fit, x):
    return torch.softmax(fit.logits(x), 1)


@pytest.mark.parametrize("n,d,k,l2", [(200, 5, 3, 0.05), (300, 8, 4, 1e-3), (150, 12, 5, 1e-2), (400, 3, 6, 0.3)])
def test_matches_scikit_learn_with_c_equal_one_over_lambda_n(n, d, k, l2):
    x, y = blobs(n, d, k, spread=1.0, seed=n + d)
    x = standardised(x)
    fit = fit_logistic(x, y, k, l2, max_iter=5000, tol=1e-8)
    reference = LogisticRegression(C=1.0 / (l2 * n), tol=1e-12, max_iter=100000).fit(x.numpy(), y.numpy())
    assert fit.converged
    # both solvers stop at |gradient| ~1e-8; near-separable problems pin W down only to ~1e-6
    np.testing.assert_allclose(fit.weight.numpy(), reference.coef_, atol=1e-5)
    probe_x, _ = blobs(50, d, k, spread=1.0, seed=7)
    np.testing.assert_allclose(softmax_probabilities(fit, probe_x).numpy(), reference.predict_proba(probe_x.numpy()),
                               atol=1e-5)


def test_two_classes_match_scikit_learns_binomial_form_with_c_equal_two_over_lambda_n():
    # the symmetric pair (w, -w) penalised as 2 ||w||^2 is scikit-learn's single vector v = 2 w
    # penalised as ||v||^2 / 2: the same J when C = 2 / (lambda n)
    n, l2 = 250, 0.02
    x, y = blobs(n, 4, 2, spread=0.8, seed=3)
    x = standardised(x)
    fit = fit_logistic(x, y, 2, l2, max_iter=5000, tol=1e-8)
    reference = LogisticRegression(C=2.0 / (l2 * n), tol=1e-12, max_iter=100000).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose((fit.weight[1] - fit.weight[0]).numpy(), reference.coef_[0], atol=1e-5)
    np.testing.assert_allclose(softmax_probabilities(fit, x).numpy(), reference.predict_proba(x.numpy()), atol=1e-5)


def test_objective_gradient_matches_autograd():
    x, y = blobs(40, 6, 4, spread=1.0, seed=0)
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    reference = torch.nn.functional.cross_entropy(x @ weight.T + bias, y) + 0.5 * 0.3 * weight.pow(2).sum()
    reference.backward()
    loss, grad_w, grad_b = objective(weight.detach(), bias.detach(), x, y, 0.3)
    assert loss.item() == pytest.approx(reference.item(), abs=1e-12)
    torch.testing.assert_close(grad_w, weight.grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_b, bias.grad, atol=1e-12, rtol=0)


def test_float32_probe_predicts_as_scikit_learn_on_held_out_data():
    x, y = blobs(600, 10, 4, spread=0.5, seed=11, dtype=torch.float32)
    train_x, train_y, test_x, test_y = x[:400], y[:400], x[400:], y[400:]
    result = linear_probe(train_x, train_y, test_x, test_y, l2_grid=(1e-2,))
    mean, std = train_x.mean(0), train_x.std(0, unbiased=False)
    reference = LogisticRegression(C=1.0 / (1e-2 * 400), tol=1e-10, max_iter=10000).fit(
        ((train_x - mean) / std).numpy(), train_y.numpy())
    expected = float(np.mean(reference.predict(((test_x - mean) / std).numpy()) == test_y.numpy()))
    assert abs(result.accuracy - expected) <= 1 / 200  # at most one borderline test sample apart
    assert result.converged and result.iterations > 0 and result.val_accuracy == {}


def test_warm_start_reaches_the_same_optimum():
    x, y = blobs(300, 6, 3, spread=1.0, seed=5)
    x = standardised(x)
    cold = fit_logistic(x, y, 3, 1e-3, tol=1e-8)
    warm = fit_logistic(x, y, 3, 1e-3, start=fit_logistic(x, y, 3, 1e-1, tol=1e-8), tol=1e-8)
    torch.testing.assert_close(warm.weight, cold.weight, atol=1e-6, rtol=0)
    assert warm.converged and cold.converged


def test_convergence_is_reported_and_can_fail():
    x, y = blobs(300, 8, 4, spread=1.0, seed=2, dtype=torch.float32)
    converged = fit_logistic(standardised(x), y, 4, 1e-3)
    assert converged.converged and 0 < converged.iterations < 1000
    capped = fit_logistic(standardised(x), y, 4, 1e-3, max_iter=2)
    assert not capped.converged and capped.iterations == 2 and capped.gradient > 1e-4


def test_the_grid_choice_uses_only_the_validation_split():
    x, y = blobs(700, 20, 5, spread=0.35, seed=4, dtype=torch.float32)
    train_x, train_y, test_x, test_y = x[:500], y[:500], x[500:], y[500:]
    grid = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)
    base = linear_probe(train_x, train_y, test_x, test_y, l2_grid=grid, seed=3)
    shuffled = test_y[torch.randperm(len(test_y), generator=torch.Generator().manual_seed(0))]
    other = linear_probe(train_x, train_y, -test_x, shuffled, l2_grid=grid, seed=3)
    assert list(base.val_accuracy) == list(grid)[:len(base.val_accuracy)]  # strongest first, maybe stopped early
    assert other.l2 == base.l2 and other.val_accuracy == base.val_accuracy
    assert other.accuracy != base.accuracy
    best = max(base.val_accuracy.values())
    assert base.l2 == max(l2 for l2, acc in base.val_accuracy.items() if acc == best)  # ties: the stronger
    # a different validation split may choose differently, but still from the validation scores alone
    reseeded = linear_probe(train_x, train_y, test_x, test_y, l2_grid=grid, seed=4)
    assert reseeded.val_accuracy[reseeded.l2] == max(reseeded.val_accuracy.values())


def test_the_grid_walk_stops_once_validation_accuracy_has_turned_down(monkeypatch):
    """Few samples, many noise dimensions: strong L2 wins, weaker ones overfit. The walk stops
    after PATIENCE strengths below the best and chooses what the whole grid would."""
    import selfsup.eval.linear as linear

    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (700,), generator=g)
    x = torch.randn(700, 200, generator=g)
    x[:, 0] += y.float()  # one informative dimension among 200
    grid = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    stopped = linear_probe(x[:500], y[:500], x[500:], y[500:], l2_grid=grid, seed=0)
    patience = linear.PATIENCE
    monkeypatch.setattr(linear, "PATIENCE", len(grid))
    full = linear_probe(x[:500], y[:500], x[500:], y[500:], l2_grid=grid, seed=0)
    assert len(full.val_accuracy) == len(grid) and len(stopped.val_accuracy) < len(grid)
    walked = list(stopped.val_accuracy.values())
    assert all(acc < max(walked) for acc in walked[-patience:])
    assert stopped.l2 == full.l2 and stopped.accuracy == full.accuracy


def test_the_probe_learns_the_labels_and_nothing_from_permuted_labels():
    x, y = blobs(900, 10, 5, spread=1.5, seed=6, dtype=torch.float32)
    train_x, train_y, test_x, test_y = x[:600], y[:600], x[600:], y[600:]
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) > 0.95
    permuted = train_y[torch.randperm(600, generator=torch.Generator().manual_seed(1))]
    assert linear_probe_accuracy(train_x, permuted, test_x, test_y) < 0.32  # chance is 0.2 (sd 0.023 here)


def test_unlabelled_rows_are_left_out_and_classes_keep_their_ids():
    x, y = blobs(400, 6, 3, spread=2.0, seed=8, dtype=torch.float32)
    ids = torch.tensor([2, 5, 9])[y]  # non-contiguous class ids
    train_x, train_y, test_x, test_y = x[:300], ids[:300], x[300:], ids[300:]
    plain = linear_probe(train_x, train_y, test_x, test_y)
    noise = torch.randn(50, 6, generator=torch.Generator().manual_seed(0)) * 100
    with_unlabelled = linear_probe(torch.cat([noise, train_x]), torch.cat([torch.full((50,), -1), train_y]),
                                   test_x, test_y)
    assert plain.accuracy > 0.9
    assert with_unlabelled == plain


def test_errors_name_the_problem():
    x, y = blobs(20, 3, 2, spread=1.0, seed=0, dtype=torch.float32)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe(x, torch.zeros(20, dtype=torch.long), x, y)
    with pytest.raises(ValueError, match="must be positive"):
        fit_logistic(x, y, 2, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        linear_probe(x, y, x, y, l2_grid=())


def test_the_linear_evaluation_writes_top1_l2_iterations_and_convergence_per_subject():
    from types import SimpleNamespace

    from selfsup.eval.context import FeatureSet
    from selfsup.eval.standard import linear

    x, y = blobs(400, 6, 3, spread=2.0, seed=9, dtype=torch.float32)
    features = {name: FeatureSet(x[:300] * scale, y[:300], x[300:] * scale, y[300:])
                for name, scale in (("trained", 1.0), ("random_init", 3.0), ("raw_pixels", 0.5))}
    ctx = SimpleNamespace(subjects=lambda: list(features), features=features.__getitem__,
                          cfg=SimpleNamespace(seed=0), device=torch.device("cpu"))
    out = linear(ctx)
    expected = linear_probe(x[:300], y[:300], x[300:], y[300:], seed=0)
    assert out["linear.top1"] == expected.accuracy and out["linear.l2"] == expected.l2
    assert out["linear.iterations"] == float(expected.iterations) and out["linear.converged"] == 1.0
    assert set(out) == {f"{prefix}linear.{key}" for prefix in ("", "random_init.", "raw_pixels.")
                        for key in ("top1", "l2", "iterations", "converged")}
    assert all(isinstance(v, float) for v in out.values())
