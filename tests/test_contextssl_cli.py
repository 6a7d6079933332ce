"""End to end: the contextssl recipes and the invariant baseline from the CLI on tiny data."""
import json
import math
import random
import zipfile
from pathlib import Path

import pytest
import torch

from selfsup.cli import main
from selfsup.engine.configure import run_config
from selfsup.data import build_data
from selfsup.engine.build import build_method
from selfsup.engine.checkpoint import load_checkpoint_file
from selfsup.engine.evaluate import load_trained_method
from selfsup.data.adult import MEMBER
from selfsup.eval.retrieval import chance_mrr_and_hits

TINY = ["trainer.max_steps=2", "trainer.enable_progress_bar=false", "eval.baselines=false", "eval.map_points=0",
        "model.width=4"]
TINY_CONTEXT = ["method.width=16", "method.heads=2", "method.depth=1", "method.aux_hidden_dim=16",
                "method.block_size=8", "method.eval_contexts=[0,2,6]"]
CONTEXTS = (0, 2, 6)


def run(*args) -> dict:
    assert main(list(map(str, args))) == 0
    run_dir = Path(args[-1].split("=", 1)[1])
    return json.loads((run_dir / "eval.json").read_text())


@pytest.fixture(scope="module")
def rotcolor_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "rotcolor"
    results = run("train", "contextssl-rotcolor-mnist", "data.limit=64", "data.batch_size=32", "eval.limit=20",
                  *TINY, *TINY_CONTEXT, f"run.dir={run_dir}")
    return run_dir, results


def test_rotcolor_recipe_reports_every_context_metric(rotcolor_run):
    run_dir, results = rotcolor_run
    for c in CONTEXTS:
        for env in ("rot", "color", "none"):
            for metric in ("r2", "r2_rot", "r2_color", "mrr", "hit1", "hit5", "linear.top1"):
                value = results[f"ctx{c}.{env}.{metric}"]
                assert math.isfinite(value) and value <= 1, (c, env, metric)
            assert 0 < results[f"ctx{c}.{env}.mrr"] <= 1
            # a query with every action withheld ranks the same way for every target view: chance
        assert results[f"ctx{c}.none.mrr"] == pytest.approx(chance_mrr_and_hits(20)["mrr"], abs=1e-9)
        # the representation of a query carries no action, so without context it ignores env
        assert results["ctx0.rot.r2"] == results["ctx0.color.r2"] == results["ctx0.none.r2"]
    for key in ("features.r2", "features.r2_rot", "features.r2_color", "features.linear.top1", "knn.top1"):
        assert key in results
    report = (run_dir / "report.md").read_text()
    assert "## Context length" in report and (run_dir / "plots" / "contexts.png").exists()
    assert "| mrr | rot |" in report


def test_evaluation_reads_the_whole_trained_method(rotcolor_run):
    run_dir, _ = rotcolor_run
    cfg = run_config(run_dir)
    method = build_method(cfg, build_data(cfg.data, int(cfg.seed)))
    state = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert not torch.equal(method.transformer.embed.weight, state["method.transformer.embed.weight"])
    load_trained_method(method, run_dir)
    assert not method.training
    for name, value in method.state_dict().items():
        assert torch.equal(value, state[f"method.{name}"]), name


def test_a_second_stage_on_the_first_runs_encoder_leaves_that_encoder_as_it_was(rotcolor_run, tmp_path):
    from safetensors.torch import load_file

    first, _ = rotcolor_run
    second = tmp_path / "stage2"
    run("train", "contextssl-rotcolor-mnist", "data.limit=64", "data.batch_size=32", "eval.limit=20", *TINY,
        *TINY_CONTEXT, f"model.init={first}", "method.freeze_encoder=true", f"run.dir={second}")
    before, after = load_file(first / "encoder.safetensors"), load_file(second / "encoder.safetensors")
    assert before.keys() == after.keys() and any("running_mean" in k for k in before)
    for key in before:  # weights and BatchNorm statistics alike, through the trainer's own train/eval switching
        assert torch.equal(before[key], after[key]), key


def write_adult_wheel(folder: Path, rows: int = 120) -> None:
    rng = random.Random(0)
    header = ("age,workclass,fnlwgt,education,education-num,marital-status,occupation,relationship,race,sex,"
              "capital-gain,capital-loss,hours-per-week,native-country,income-per-year")
    lines = [header]
    for _ in range(rows):
        lines.append(",".join([
            str(rng.randint(18, 80)), rng.choice(["Private", "State-gov", "?"]), str(rng.randint(20000, 400000)),
            "HS-grad", str(rng.randint(5, 16)), rng.choice(["Never-married", "Divorced"]),
            rng.choice(["Sales", "Exec-managerial"]), rng.choice(["Husband", "Wife", "Own-child"]),
            rng.choice(["White", "Black"]), rng.choice(["Male", "Female"]), str(rng.choice([0, 0, 5178])), "0",
            str(rng.randint(10, 60)), "United-States", rng.choice(["<=50K", ">50K"])]))
    with zipfile.ZipFile(folder / "fairness-0.1.8-py3-none-any.whl", "w") as wheel:
        wheel.writestr(MEMBER, "\n".join(lines) + "\n")


def test_adult_recipe_reports_income_and_sex_under_each_context(tmp_path):
    write_adult_wheel(tmp_path)
    results = run("train", "contextssl-adult", f"data.root={tmp_path}", "data.batch_size=32", "eval.limit=40",
                  *TINY, *TINY_CONTEXT, f"run.dir={tmp_path / 'run'}")
    for c in CONTEXTS:
        for env in ("sex", "none"):
            for metric in ("linear.top1", "sex.top1", "parity_gap"):
                assert 0 <= results[f"ctx{c}.{env}.{metric}"] <= 1, (c, env, metric)
    assert 0 <= results["features.sex.top1"] <= 1 and "linear.top1" in results
    assert 0 <= results["floor.sex.top1"] <= 1 and results["raw.sex.top1"] >= results["floor.sex.top1"] - 0.1


def test_invariant_baseline_trains_on_the_same_pairs(tmp_path):
    results = run("train", "data.name=rotcolor-mnist", "method.name=simclr-pairs", "method.proj_hidden_dim=16",
                  "method.proj_dim=8", "data.limit=64", "data.batch_size=32", "eval.limit=20", *TINY,
                  "eval.baselines=true", f"run.dir={tmp_path / 'run'}")
    keys = ("r2", "r2_rot", "r2_color", "linear.top1")
    assert {f"features.{k}" for k in keys} <= set(results)
    assert not any(k.startswith("ctx") for k in results)
    # the untrained encoder of the same architecture, scored by the same probes
    for k in keys:
        assert math.isfinite(results[f"random_init.features.{k}"]) and results[f"random_init.features.{k}"] <= 1
    assert any(results[f"random_init.features.{k}"] != results[f"features.{k}"] for k in keys)


def test_invariant_baseline_trains_on_table_rows(tmp_path):
    # the views are built by the method's build_views hook, so the base class no longer refuses
    # table data before simclr-pairs replaces the views (it raised an error recommending itself)
    write_adult_wheel(tmp_path)
    results = run("train", "contextssl-adult", "method.name=simclr-pairs", "method.proj_hidden_dim=16",
                  "method.proj_dim=8", f"data.root={tmp_path}", "data.batch_size=32", "eval.limit=40", *TINY,
                  f"run.dir={tmp_path / 'run'}")
    assert 0 <= results["features.sex.top1"] <= 1 and 0 <= results["linear.top1"] <= 1
    assert not any(k.startswith("ctx") for k in results)
