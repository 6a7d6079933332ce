"""Under bf16 autocast with bf16 inputs (what bf16-mixed training feeds a loss), SupCon,
SupCon-MoCo and Barlow Twins compute in float32: the loss is float32 and equals the same loss
computed in float64 from the same (bf16-rounded) inputs. The float64 values themselves are
checked against slow references in test_losses_contrastive.py / test_losses_noncontrastive.py."""
import pytest
import torch

from selfsup.losses.barlow_twins import barlow_twins_loss
from selfsup.losses.supcon import supcon_loss, supcon_queue_terms
from selfsup.losses.precision import float32_compute


def _inputs(n: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g)
    z2 = (z1 + 0.5 * torch.randn(n, d, generator=g)).bfloat16()
    labels = torch.randint(-1, 4, (n,), generator=g)
    queue = torch.randn(3 * n, d, generator=g).bfloat16()
    queue_labels = torch.randint(-1, 4, (3 * n,), generator=g)
    return z1.bfloat16(), z2, labels, queue, queue_labels


LOSSES = {
    "supcon": lambda z1, z2, y, q, qy, t: supcon_loss(z1, z2, y, temperature=t),
    "supcon-only": lambda z1, z2, y, q, qy, t: supcon_loss(z1, z2, y, temperature=t, unsup_method="only"),
    "supcon-moco": lambda z1, z2, y, q, qy, t: sum(supcon_queue_terms(z1, z2, y, q, qy, temperature=t)),
    "barlow-twins": lambda z1, z2, y, q, qy, t: barlow_twins_loss(z1, z2, lambda_offdiag=t / 10),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("n,d,temperature", [(16, 32, 0.1), (64, 128, 0.1), (96, 64, 0.5)])
def test_bf16_autocast_loss_is_float32_and_matches_float64(name, n, d, temperature):
    z1, z2, labels, queue, queue_labels = _inputs(n, d, seed=n + d)
    loss = LOSSES[name]
    reference = loss(*(t.double() if t.is_floating_point() else t for t in (z1, z2, labels, queue, queue_labels)),
                     temperature).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(z1, z2, labels, queue, queue_labels, temperature)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference, rel=1e-5)


def test_gradients_reach_bf16_inputs_in_their_dtype():
    z1, z2, labels, _, _ = _inputs(16, 32, seed=0)
    z1.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (supcon_loss(z1, z2, labels) + barlow_twins_loss(z1, z2)).backward()
    assert z1.grad.dtype == torch.bfloat16 and torch.isfinite(z1.grad.float()).all()


def test_float32_compute_keeps_float64_and_non_float_arguments():
    @float32_compute
    def probe(x, y, *, k):
        return x.dtype, y.dtype, k.dtype, torch.is_autocast_enabled("cpu"), (x @ x.T).dtype

    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert probe(torch.ones(2, 2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.float64),
                     k=torch.ones(2, dtype=torch.long)) == (torch.float32, torch.float64, torch.long, False,
                                                           torch.float32)
