"""Issue 3's methods as modules: outputs, frozen momentum networks, EMA steps, queues, arguments."""
import pytest
import torch

from selfsup.config.loading import ConfigError
from selfsup.config.schema import AugmentConfig, ModelConfig, OptimConfig
from selfsup.engine.optim import build_optimizer
from selfsup.methods import METHODS, MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder

SPEC = InputSpec(1, (1, 8, 8), "image")
SMALL = {"proj_hidden_dim": 16, "proj_dim": 8}
EXTRA = {"moco": {"queue_size": 12}, "supcon-moco": {"queue_size": 12}, "byol": {"pred_hidden_dim": 8},
         "simsiam": {"pred_hidden_dim": 4}}
NAMES = ["moco", "supcon", "supcon-moco", "byol", "simsiam", "barlow-twins", "vicreg"]
LABELS = torch.tensor([0, 1, 2, -1, 0, 1, -1, -1])


def build(name, **params):
    torch.manual_seed(0)
    cls, p = resolve_method_params({"name": name, **SMALL, **EXTRA.get(name, {}), **params})
    encoder = build_encoder(ModelConfig(width=4), SPEC, (0.5,), (0.25,))
    return cls(p, encoder, MethodContext(SPEC, 10, AugmentConfig()))


def step(method, x=None):
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)) if x is None else x
    views = method.make_views(x, torch.Generator().manual_seed(2))
    return method.loss(views, LABELS)


@pytest.mark.parametrize("name", NAMES)
def test_loss_features_and_embeddings(name):
    method = build(name)
    out = step(method)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert out["features"].shape == (8, method.encoder.feature_dim)
    assert out["embeddings"].shape[0] == 8
    out["loss"].backward()
    assert all(p.grad is not None for p in method.encoder.parameters())


@pytest.mark.parametrize("name", ["moco", "supcon-moco", "byol"])
def test_momentum_network_is_frozen_and_not_optimised(name):
    method = build(name)
    frozen = {id(p) for p in method.target.parameters()}
    assert frozen and all(not p.requires_grad for p in method.target.parameters())
    optimizer = build_optimizer(OptimConfig(), method, None)
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not frozen & optimised
    assert {id(p) for p in method.encoder.parameters()} <= optimised


def test_moco_ema_step_and_cosine_schedule():
    method = build("moco", momentum=0.9)
    online = next(method.encoder.parameters())
    with torch.no_grad():
        online.add_(1.0)
    before = next(method.target.parameters()).clone()
    method.after_optimizer_step(0.3)
    torch.testing.assert_close(next(method.target.parameters()), 0.9 * before + 0.1 * online.detach())
    byol = build("byol", momentum=0.5, momentum_cosine=True)
    with torch.no_grad():
        next(byol.encoder.parameters()).add_(1.0)
    before = next(byol.target.parameters()).clone()
    byol.after_optimizer_step(1.0)  # the cosine schedule reaches momentum 1: the target stays
    torch.testing.assert_close(next(byol.target.parameters()), before)


def test_queues_fill_in_training_only_and_keep_labels():
    method = build("supcon-moco")
    method.eval()
    step(method)
    assert int(method.queue.count) == 0
    method.train()
    step(method)
    assert int(method.queue.count) == 8 and torch.equal(method.queue.filled()[1], LABELS)
    assert torch.allclose(method.queue.filled()[0].norm(dim=1), torch.ones(8))


def test_supcon_without_labels_is_nt_xent():
    # with every sample unlabelled, SupCon's self-supervised term is SimCLR's NT-Xent
    from selfsup.losses import nt_xent, supcon_terms

    z1, z2 = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    unsup, sup = supcon_terms(z1, z2, torch.full((6,), -1), temperature=0.3)
    assert unsup.item() == pytest.approx(nt_xent(z1, z2, 0.3).item(), abs=1e-9) and sup.item() == 0


@pytest.mark.parametrize("name,params,match", [
    ("supcon", {"unsup_method": "most"}, "unsup_method must be one of all, only"),
    ("supcon-moco", {"unsup_method": "most"}, "unsup_method must be one of all, only"),
    ("moco", {"temperature": 0.0}, "temperature must be positive"),
    ("byol", {"momentum": 1.5}, r"momentum must be in \[0, 1\]"),
    ("moco", {"queue_size": 0}, "positive size"),
    ("barlow-twins", {"lambda_offdiag": -1.0}, "method.lambda_offdiag must be positive"),
    ("vicreg", {"cov_coeff": -1.0}, "cov_coeff must be non-negative"),
])
def test_bad_parameters_are_clear_errors(name, params, match):
    with pytest.raises(ValueError, match=match):
        build(name, **params)


def test_unknown_parameter_names_the_valid_ones():
    with pytest.raises(ConfigError, match="method.queue_size"):
        resolve_method_params({"name": "moco", "queue_sise": 5})
    assert set(NAMES) <= set(METHODS.names())
