"""End to end: the pretext recipes through `selfsup train` and `selfsup eval` with the protocol's options."""
import json
from pathlib import Path

import pytest
import torch

from selfsup.augment.permutations import max_hamming_permutations
from selfsup.cli import main
from selfsup.engine.checkpoint import load_checkpoint_file

TINY = ["trainer.max_steps=2", "trainer.enable_progress_bar=false", "model.width=8", "data.batch_size=32",
        "eval.map_points=0", "eval.limit=200", "eval.baselines=false"]
MNIST = ["data.name=mnist", "data.limit=300"]  # 28x28: room for a 3x3 patch grid


def read_eval(run_dir: Path) -> dict:
    return json.loads((run_dir / "eval.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("recipe,extra", [
    ("relative-patch-fashion-mnist", MNIST),
    ("jigsaw-fashion-mnist", MNIST + ["method.num_permutations=10"]),
    ("exemplar-fashion-mnist", ["data.name=digits", "augment.num_views=3"]),
])
def test_each_recipe_trains_and_evaluates(tmp_path, recipe, extra):
    run_dir = tmp_path / "run"
    assert main(["train", recipe, *TINY, *extra, f"run.dir={run_dir}"]) == 0
    results = read_eval(run_dir)
    assert 0 <= results["knn.top1"] <= 1 and 0 <= results["linear.top1"] <= 1
    if recipe.startswith("jigsaw"):  # the permutation set travels with the run
        state = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
        assert torch.equal(state["method.permutations"], max_hamming_permutations(10, seed=0, criterion="mean"))


@pytest.mark.slow
def test_eval_options_combine_in_one_call(tmp_path, capsys):
    run_dir = tmp_path / "rotnet"
    assert main(["train", "rotnet-fashion-mnist", *TINY, "data.name=digits", "model.encoder=resnet-small",
                 "eval.after_train=false", f"run.dir={run_dir}"]) == 0
    assert main(["eval", str(run_dir), "eval.limit=200", "eval.baselines=false", "--probe", "mlp,finetune",
                 "--layers", "--label-fraction", "0.1,0.5"]) == 0
    results = read_eval(run_dir)
    expected = {"knn.top1", "linear.top1", "mlp.top1", "finetune.top1", "lowshot.10pct.linear.top1",
                "lowshot.50pct.linear.top1"} | {f"layer.block{k}.{pooling}.linear.top1" for k in range(1, 5)
                                                for pooling in ("adaptive-max", "global-avg")}
    assert expected <= set(results)
    assert all(0 <= results[k] <= 1 for k in expected)
    assert (run_dir / "plots" / "layers.png").stat().st_size > 0
    report = (run_dir / "report.md").read_text()
    assert "Per-layer linear probe" in report and report.index("block1") < report.index("block4")


def test_bad_eval_options_are_refused(tmp_path, capsys):
    for args in (["--probe", "svm"], ["--label-fraction", "0"], ["--label-fraction", "ten"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", str(tmp_path), *args])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown probe 'svm'" in err and "(0, 1]" in err and "comma-separated" in err
