"""Per-layer probing's stage poolings (eval.layer_pooling): adaptive max pooling to a comparable
feature size per stage (Kolesnikov et al. 2019) and the global average, their eval.json keys,
their report, and a probe that finds nothing in random labels."""
import math
from types import SimpleNamespace

import pytest
import torch

from selfsup.config.loading import ConfigError, build_config
from selfsup.config.ranges import check_ranges
from selfsup.config.schema import ModelConfig
from selfsup.data.base import ArrayDataset
from selfsup.eval.context import EvalContext
from selfsup.eval.layers import (adaptive_grid, layers, layers_section, passes, readout, readout_features,
                                 stage_features, stage_readouts)
from selfsup.models import InputSpec, build_encoder

RESNET50 = {"block1": (256, 56, 56), "block2": (512, 28, 28), "block3": (1024, 14, 14), "block4": (2048, 7, 7)}


def small_encoder(width=8, seed=0):
    torch.manual_seed(seed)
    spec = InputSpec(1, (1, 28, 28))
    model = ModelConfig(encoder="resnet-small", width=width, channels_last=False)
    return build_encoder(model, spec, [0.5], [0.25]).eval()


def test_adaptive_max_gives_every_stage_about_the_target_size():
    grids = {name: adaptive_grid(shape, 9000) for name, shape in RESNET50.items()}
    assert grids == {"block1": (6, 6), "block2": (4, 4), "block3": (3, 3), "block4": (2, 2)}
    sizes = [readout(name, shape, "adaptive-max", 9000).size for name, shape in RESNET50.items()]
    assert sizes == [9216, 8192, 9216, 8192]
    assert max(sizes) / min(sizes) < 1.2 and all(abs(s - 9000) / 9000 < 0.1 for s in sizes)
    # the global average instead: C per stage, 8x apart from the first stage to the last
    assert [readout(name, shape, "global-avg", 9000).size for name, shape in RESNET50.items()] == [256, 512, 1024, 2048]
    # each C h w is the closest any grid of the map's aspect gets to the target
    for shape in RESNET50.values():
        c, side = shape[0], adaptive_grid(shape, 9000)[0]
        assert all(abs(c * side ** 2 - 9000) <= abs(c * s ** 2 - 9000) for s in range(1, shape[1] + 1))


def test_adaptive_grid_keeps_the_aspect_ratio_and_never_exceeds_the_map():
    assert adaptive_grid((64, 8, 16), 2048) == (4, 8)  # 64 x 4 x 8 = 2048
    assert adaptive_grid((16, 100), 800) == (50,)  # a temporal map [C, T]
    assert adaptive_grid((16, 14, 14), 9000) == (14, 14)  # smaller than the target: the whole map
    assert adaptive_grid((20000, 4, 4), 9000) == (1, 1)  # wider than the target: one max per channel
    assert adaptive_grid((32,), 9000) == ()


def test_adaptive_max_pools_blocks_as_a_slow_reference_does():
    encoder = small_encoder()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps = encoder.forward_stages(x)
        block1 = maps["block1"]  # [5, 8, 14, 14]
        r = readout("block1", block1.shape[1:], "adaptive-max", 8 * 7 * 7)
        assert r.grid == (7, 7) and r.size == 392
        reference = torch.stack([block1[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].amax(dim=(2, 3))
                                 for i in range(7) for j in range(7)], dim=2)  # [5, 8, 49], row-major cells
        torch.testing.assert_close(r(block1), reference.flatten(1))
        avg = readout("block1", block1.shape[1:], "global-avg", 9000)
        torch.testing.assert_close(avg(block1), block1.mean(dim=(2, 3)))


def test_one_pass_per_group_of_stages_within_the_budget():
    encoder = small_encoder()
    example = torch.rand(1, 1, 28, 28)
    both = stage_readouts(encoder, example, ["adaptive-max", "global-avg"], 9000)
    assert [(r.stage, r.pooling, r.size) for r in both] == [
        ("block1", "adaptive-max", 8 * 14 * 14), ("block1", "global-avg", 8), ("block2", "adaptive-max", 16 * 7 * 7),
        ("block2", "global-avg", 16), ("block3", "adaptive-max", 32 * 4 * 4), ("block3", "global-avg", 32),
        ("block4", "adaptive-max", 64 * 4 * 4), ("block4", "global-avg", 64)]
    assert [len(g) for g in passes(both, 2000)] == [2, 4, 2]  # 1568+8 | 784+16+512+32 | 1024+64
    assert all(sum(r.size for r in g) <= 2000 for g in passes(both, 2000))
    assert len(passes(stage_readouts(encoder, example, ["global-avg"], 9000), 9000)) == 1
    data = ArrayDataset(torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8), torch.arange(12) % 3)
    together, _ = readout_features(encoder, data, 5, "cpu", both)
    for r in both:  # a readout's features do not depend on the pass it rides in
        alone, _ = readout_features(encoder, data, 5, "cpu", [r])
        torch.testing.assert_close(together[r], alone[r])
    pooled, labels = stage_features(encoder, data, 5, "cpu", pooling="adaptive-max")
    assert [f.shape[1] for f in pooled.values()] == [1568, 784, 512, 1024] and torch.equal(labels, data.labels)


def noise_digits(n, seed, informative=False):
    """28 x 28 uint8 noise with random labels in 0..9; ``informative``: a bright 6 x 6 square
    at a label-dependent place, so the labels can be read from the image."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 128, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    if informative:
        for i, y in enumerate(labels.tolist()):
            r, c = 2 + 8 * (y // 4), 2 + 8 * (y % 4)
            images[i, :, r:r + 6, c:c + 6] = 255
    return ArrayDataset(images, labels)


def context(tmp_path, bank, test, pooling="adaptive-max,global-avg", baselines=True, features=9000):
    cfg = build_config({"recipe": "fixture", "eval": {"layer_pooling": pooling, "layer_features": features,
                                                      "batch_size": 256}})
    encoders = {"trained": small_encoder(seed=0)}
    if baselines:
        encoders["random_init"] = small_encoder(seed=1)
    return EvalContext(cfg, tmp_path, SimpleNamespace(info={}), bank, test, encoders, torch.device("cpu"))


def test_keys_name_the_stage_and_the_pooling_and_the_report_shows_both(tmp_path, one_thread):
    bank, test = noise_digits(120, 0, informative=True), noise_digits(60, 1, informative=True)
    ctx = context(tmp_path, bank, test)
    results = layers(ctx)
    stages, poolings = ["block1", "block2", "block3", "block4"], ["adaptive-max", "global-avg"]
    expected = {f"{prefix}layer.{s}.{p}.{m}" for prefix in ("", "random_init.") for s in stages for p in poolings
                for m in ("linear.top1", "features")}
    assert set(results) == expected
    assert [results[f"layer.{s}.adaptive-max.features"] for s in stages] == [1568, 784, 512, 1024]
    assert [results[f"layer.{s}.global-avg.features"] for s in stages] == [8, 16, 32, 64]
    assert all(0 <= results[k] <= 1 for k in expected if k.endswith("top1"))
    section = layers_section(ctx, results)
    assert "| stage | adaptive-max features | adaptive-max top-1 | adaptive-max random-init top-1 | global-avg " \
           "features | global-avg top-1 | global-avg random-init top-1 |" in section
    assert "| block1 | 1568 | " in section and "(`eval.layer_pooling`)" in section
    assert (tmp_path / "plots" / "layers.png").stat().st_size > 0
    one = layers(context(tmp_path, bank, test, pooling="global-avg", baselines=False))
    assert set(one) == {f"layer.{s}.global-avg.{m}" for s in stages for m in ("linear.top1", "features")}
    assert one["layer.block2.global-avg.linear.top1"] == results["layer.block2.global-avg.linear.top1"]


def test_adaptive_pooled_probe_finds_nothing_in_random_labels(tmp_path, one_thread):
    """Random labels on noise: every stage's probe stays at chance (10 classes, 400 test
    samples: 4 binomial standard deviations above 0.1). The same images carrying their label
    are read well above it, so the bound is not vacuous."""
    test_n, chance = 400, 0.1
    bound = chance + 4 * math.sqrt(chance * (1 - chance) / test_n)
    random = layers(context(tmp_path, noise_digits(600, 0), noise_digits(test_n, 1), "adaptive-max", False))
    accuracies = [v for k, v in random.items() if k.endswith("linear.top1")]
    assert len(accuracies) == 4 and max(accuracies) < bound, random
    readable = layers(context(tmp_path, noise_digits(600, 0, True), noise_digits(test_n, 1, True), "adaptive-max",
                              False))
    assert min(v for k, v in readable.items() if k.endswith("linear.top1")) > 0.5


@pytest.mark.parametrize("value,ok", [("adaptive-max", True), ("global-avg,adaptive-max", True),
                                      ("max", False), ("", False), ("adaptive-max,", False)])
def test_layer_pooling_names_are_checked_with_the_config(value, ok):
    cfg = build_config({"eval": {"layer_pooling": value}})
    if ok:
        check_ranges(dict(eval=dict(cfg.eval)))
    else:
        with pytest.raises(ConfigError, match="eval.layer_pooling.*adaptive-max, global-avg"):
            check_ranges(dict(eval=dict(cfg.eval)))
    with pytest.raises(ConfigError, match="eval.layer_features"):
        check_ranges({"eval": {"layer_features": 0}})
