"""End to end: SimPer's recipes through the `selfsup` command on tiny clips and signals."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfsup.engine.configure import run_config
from selfsup.data import build_data
from selfsup.engine.build import build_method
from selfsup.engine.evaluate import capped, evaluate_run
from selfsup.eval.features import as_float_inputs
from selfsup.eval.linear import linear_probe_accuracy
from selfsup.eval.regression import regression_probe
from selfsup.models import load_encoder

TINY_DATA = ["data.fps=6", "data.seconds=2", "data.image_size=12", "data.freq_range=[0.5,2.5]", "data.limit=40",
             "data.batch_size=4", "model.width=4", "trainer.enable_progress_bar=false", "eval.limit=40"]


def selfsup(*args):
    result = subprocess.run([sys.executable, "-m", "selfsup", *map(str, args)], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ))
    if result.returncode != 0:
        raise AssertionError(f"selfsup {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def read_eval(run_dir) -> dict:
    return json.loads((Path(run_dir) / "eval.json").read_text())


@pytest.fixture(scope="module")
def clips_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "simper-digits"
    selfsup("train", "simper-rotating-digits", *TINY_DATA, "method.num_speeds=2", "trainer.max_steps=3",
            "eval.map_points=40", f"run.dir={run_dir}")
    return run_dir


def test_simper_rotating_digits_trains_and_evaluates_the_frequency(clips_run):
    results = read_eval(clips_run)
    for prefix in ("", "random_init.", "raw_pixels."):
        assert results[f"{prefix}regression.mae"] >= 0 and results[f"{prefix}regression.mape"] >= 0
        assert results[f"{prefix}regression.r2"] <= 1
    assert results["regression.mae"] < 1.0  # frequencies 0.5-2.5 Hz: the mean predictor's MAE is about 0.5
    for prefix in ("", "random_init."):  # the readouts of a per-frame encoder beside its spectrum
        assert {f"{prefix}regression.{r}.{m}" for r in ("clip", "series") for m in ("mae", "mape", "r2")} <= set(results)
    assert not any(k.startswith("raw_pixels.regression.clip") for k in results)
    report = (clips_run / "report.md").read_text()
    assert "## Regression probe: freq (Hz)" in report and "| pooled clip embedding | R² |" in report
    for name in ("embedding_freq", "embedding_freq_clip", "embedding_freq_random_init", "embedding_freq_clip_random_init"):
        assert f"plots/{name}.png" in report and (clips_run / "plots" / f"{name}.png").exists()
    config = (clips_run / "config.yaml").read_text()
    assert "label_temperature: 0.1" in config and "feature_temperature: 1.0" in config


def test_exported_encoder_maps_clips_to_their_spectrum(clips_run):
    encoder = load_encoder(clips_run)
    features = encoder(torch.rand(3, 12, 1, 12, 12))
    assert features.shape == (3, 13)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(3))


def test_eval_again_gives_the_same_regression(clips_run):
    before = read_eval(clips_run)
    after = evaluate_run(clips_run, ["eval.baselines=false", "eval.map_points=0"])
    assert "random_init.regression.mae" not in after
    for key in ("regression.mae", "regression.mape", "regression.r2"):
        assert after[key] == pytest.approx(before[key], abs=1e-9)


def test_simper_ppg_recipe_on_heartpy_format_files(tmp_path):
    from test_periodic_datasets import _write_heartpy

    data = tmp_path / "ppg"
    data.mkdir()
    _write_heartpy(data)
    run_dir = tmp_path / "ppg-run"
    from selfsup.cli import main

    assert main(["train", "simper-ppg", f"data.root={data}", "data.batch_size=8", "model.width=4", "trainer.max_steps=3",
                 "trainer.enable_progress_bar=false", "eval.baselines=false", f"run.dir={run_dir}"]) == 0
    results = read_eval(run_dir)
    assert {"regression.mae", "regression.mape", "regression.r2", "knn.top1"} <= set(results)
    assert "## Regression probe: heart_rate (bpm)" in (run_dir / "report.md").read_text()


def test_simclr_trains_on_clips_with_the_same_encoder(tmp_path):
    from selfsup.config.loading import build_config, parse_overrides, recipe_values
    from selfsup.engine.configure import resolve_config
    from selfsup.engine.train import train

    values = recipe_values("simper-rotating-digits")
    for embedding in ("auto", "spectrum"):  # auto: the pooled clip embedding, the paper's SimCLR
        values["method"] = {"name": "simclr", "proj_hidden_dim": 32, "proj_dim": 16, "embedding": embedding}
        cfg = build_config(values, parse_overrides([*TINY_DATA, "trainer.max_steps=2", "eval.baselines=false",
                                                    "eval.map_points=0", f"run.dir={tmp_path / embedding}"]))
        run = train(resolve_config(cfg))
        results = evaluate_run(run)
        assert {"regression.mae", "regression.r2", "regression.clip.r2", "regression.series.r2", "linear.top1"} <= set(results)
        assert f"embedding: {embedding}" in (run.dir / "config.yaml").read_text()


def test_simclr_on_clips_trains_under_two_ddp_processes(tmp_path):
    # the clip embedding leaves the per-frame head without a gradient: DDP must not see it as trainable
    run_dir = tmp_path / "ddp"
    selfsup("train", "simper-rotating-digits", "method.name=simclr", "method.proj_hidden_dim=16", "method.proj_dim=8",
            *TINY_DATA, "trainer.max_steps=3", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
            "eval.after_train=false", f"run.dir={run_dir}")
    assert json.loads((run_dir / "training.json").read_text())["steps"] == 3


def test_finetuning_for_the_frequency(clips_run):
    results = evaluate_run(clips_run, ["eval.map_points=0"], ["finetune"])
    for prefix in ("", "random_init."):
        assert {f"{prefix}finetune.regression.{m}" for m in ("mae", "mape", "r2")} <= set(results)
    assert "finetune.top1" not in results  # data with a continuous target is fine-tuned for the target
    assert "| fine-tuned | MAE |" in (clips_run / "report.md").read_text()


def test_per_layer_probes_regress_the_frequency_from_every_pooled_stage(clips_run):
    results = evaluate_run(clips_run, ["eval.map_points=0"], ["layers"])
    stages = [k.split(".")[1] for k in results if k.startswith("layer.") and k.endswith(".global-avg.regression.r2")]
    assert stages[-1] == "series" and len(stages) >= 3
    assert {f"random_init.layer.{s}.{p}.{m}" for s in stages for p in ("adaptive-max", "global-avg")
            for m in ("linear.top1", "regression.mae")} <= set(results)
    # every stage again, a second way, for the trained encoder and for its initialisation (the
    # seeded method built afresh): each map averaged over its time and space axes by hand; the
    # per-frame series [N, T] has no channel axis and is probed as it is
    cfg = run_config(clips_run)
    splits = build_data(cfg.data, int(cfg.seed))
    bank, test = capped(splits.train, cfg.eval.limit, int(cfg.seed)), capped(splits.test, cfg.eval.limit, int(cfg.seed) + 1)

    def pooled(encoder, dataset, stage):
        with torch.no_grad():
            m = encoder.forward_stages(as_float_inputs(dataset.load(torch.arange(len(dataset)))))[stage]
        return m if stage == "series" else m.mean(dim=tuple(range(2, m.dim())))

    untrained = build_method(cfg, splits).encoder.eval()
    top1 = {}
    for prefix, encoder in (("", load_encoder(clips_run).eval()), ("random_init.", untrained)):
        for stage in stages:
            train_x, test_x = pooled(encoder, bank, stage), pooled(encoder, test, stage)
            top1[prefix + stage] = linear_probe_accuracy(train_x, bank.labels, test_x, test.labels)
            assert results[f"{prefix}layer.{stage}.global-avg.linear.top1"] == pytest.approx(top1[prefix + stage],
                                                                                              abs=1e-6)
            metrics, _ = regression_probe(train_x, bank.targets["freq"], test_x, test.targets["freq"])
            for k in ("mae", "mape", "r2"):
                assert results[f"{prefix}layer.{stage}.global-avg.regression.{k}"] == pytest.approx(
                    metrics[k], rel=1e-4, abs=1e-6)
    assert any(top1[s] != top1["random_init." + s] for s in stages)  # the two encoders' checks are distinct
    report = (clips_run / "report.md").read_text()
    assert "regression MAE" in report and "random-init R²" in report
