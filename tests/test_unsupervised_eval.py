"""Label-free evaluation: uniformity and alignment against a loop reference, which probes the
label gate lets run, model.init loading (selfsup files, torchvision state dicts, mismatches), and
the training-length floor for small user data."""
import itertools
import math

import pytest
import torch
from torchvision.models import resnet18

from selfsup.config import ModelConfig
from selfsup.engine.build import lightning_trainer_kwargs, planned_steps
from selfsup.engine.configure import USER_DATA_MIN_STEPS, compose_config
from selfsup.eval.label_gate import class_label_gap, online_probe_gap
from selfsup.eval.unsupervised import alignment, uniformity
from selfsup.models import InputSpec, build_encoder, export_encoder
from selfsup.models.init_weights import load_init_weights


def unit(row):
    norm = math.sqrt(sum(v * v for v in row))
    return [v / norm for v in row]


def uniformity_reference(z, t=2.0):
    rows = [unit(r) for r in z.double().tolist()]
    pairs = [(i, j) for i, j in itertools.permutations(range(len(rows)), 2)]
    total = sum(math.exp(-t * sum((a - b) ** 2 for a, b in zip(rows[i], rows[j]))) for i, j in pairs)
    return math.log(total / len(pairs))


def alignment_reference(z1, z2, alpha=2.0):
    pairs = [(unit(a), unit(b)) for a, b in zip(z1.double().tolist(), z2.double().tolist())]
    return sum(math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b))) ** alpha for a, b in pairs) / len(pairs)


@pytest.mark.parametrize("n,d,t", [(2, 3, 2.0), (7, 5, 2.0), (16, 8, 1.0), (33, 4, 3.0)])
def test_uniformity_matches_the_pairwise_loop(n, d, t):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(n))
    assert abs(float(uniformity(z, t)) - uniformity_reference(z, t)) < 1e-6


@pytest.mark.parametrize("n,d,alpha", [(1, 3, 2.0), (9, 6, 2.0), (20, 4, 1.0)])
def test_alignment_matches_the_loop(n, d, alpha):
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert abs(float(alignment(z1, z2, alpha)) - alignment_reference(z1, z2, alpha)) < 1e-6


def test_collapsed_embeddings_are_least_uniform_and_perfectly_aligned():
    z = torch.ones(10, 4)
    assert abs(float(uniformity(z))) < 1e-9 and float(alignment(z, 3 * z)) < 1e-12


def test_the_label_gate():
    y = torch.tensor
    assert class_label_gap(y([0, 1, -1]), y([1, -1])) is None
    assert "0 class(es)" in class_label_gap(y([-1, -1]), y([0, 1]))
    assert "1 class(es)" in class_label_gap(y([2, 2, -1]), y([2]))  # a probe never runs on one class
    assert "no test sample" in class_label_gap(y([0, 1]), y([-1, -1]))
    assert online_probe_gap(y([0, 1])) is None and "0 class(es)" in online_probe_gap(y([-1]))


def encoder(name="resnet18", px=32, seed=0):
    torch.manual_seed(seed)
    return build_encoder(ModelConfig(encoder=name), InputSpec(3, (3, px, px), "image"), [0.5] * 3, [0.25] * 3)


def test_model_init_from_a_selfsup_encoder_file_and_a_torchvision_state_dict(tmp_path, caplog):
    source = encoder("convnet-small", seed=1)
    path = export_encoder(source, ModelConfig(encoder="convnet-small"), InputSpec(3, (3, 32, 32), "image"),
                          tmp_path / "encoder.safetensors")
    target = encoder("convnet-small", seed=2)
    load_init_weights(target, path)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k
    tv = resnet18().state_dict()
    torch.save(tv, tmp_path / "tv.pth")
    for px, stem_loaded in ((32, False), (96, True)):  # CIFAR stem (3x3) for <= 64 px: the 7x7 conv1 is skipped
        net = encoder(px=px)
        load_init_weights(net, tmp_path / "tv.pth")
        state = net.state_dict()
        assert torch.equal(state["backbone.layer3.1.conv2.weight"], tv["layer3.1.conv2.weight"])
        assert torch.equal(state["backbone.stem.1.running_var"], tv["bn1.running_var"])
        assert torch.equal(state["mean"], torch.full((3, 1, 1), 0.5))  # the data's own normalisation stays
        assert (state["backbone.stem.0.weight"].shape == tv["conv1.weight"].shape) == stem_loaded
    assert "skipped, the stem stays randomly initialised" in caplog.text


def test_model_init_mismatch_names_the_file_and_keys(tmp_path):
    torch.save(resnet18().state_dict(), tmp_path / "tv.pth")
    with pytest.raises(ValueError, match=r"model.init=.*tv.pth.*missing backbone\."):
        load_init_weights(encoder("convnet-small"), tmp_path / "tv.pth")
    with pytest.raises(FileNotFoundError, match="model.init="):
        load_init_weights(encoder(), tmp_path / "none.pth")


def test_small_user_data_trains_at_least_the_floor_and_large_data_its_epochs(tmp_path):
    cfg = compose_config(None, ["data.name=image-folder", f"data.root={tmp_path}"])
    assert cfg.trainer.min_train_steps == USER_DATA_MIN_STEPS
    assert planned_steps(cfg, 2000) == USER_DATA_MIN_STEPS  # 7 batches x 100 epochs would be 700
    kwargs = lightning_trainer_kwargs(cfg, 2000)
    assert kwargs["max_steps"] == USER_DATA_MIN_STEPS and kwargs["max_epochs"] * 7 >= USER_DATA_MIN_STEPS
    assert USER_DATA_MIN_STEPS > 7 * cfg.trainer.max_epochs  # the floor, not the epochs, sets 2,000 images' length
    assert planned_steps(cfg, 60000) == 234 * cfg.trainer.max_epochs and lightning_trainer_kwargs(cfg, 60000)["max_steps"] == -1
    given = compose_config(None, ["data.name=image-folder", f"data.root={tmp_path}", "trainer.max_epochs=2"])
    assert given.trainer.min_train_steps is None and planned_steps(given, 2000) == 14  # the length asked for
    assert compose_config(None, []).trainer.min_train_steps is None  # built-in data: the recipe's length
