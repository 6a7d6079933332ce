"""report.md tells the truth (the run's length and conditions first; a warning wherever the
trained encoder does not beat a baseline), every figure is a real PNG drawn in eval/plots.py,
and no other module of selfsup touches matplotlib."""
import ast
import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from selfsup.eval import plots
from selfsup.eval.report import CURVES, baseline_warnings, run_header, write_report

ROOT = Path(__file__).resolve().parents[1] / "src" / "selfsup"
TRAINING = {"method": "byol", "encoder": "resnet18", "dataset": "fashion-mnist", "pretrain_samples": 57000,
            "val_samples": 3000, "test_samples": 10000, "epochs": 3, "steps": 1335, "batch_size": 128,
            "world_size": 2, "samples_seen": 341760, "precision": "bf16-mixed", "device": "cuda (NVIDIA H200)",
            "wall_time_s": 754.2, "finished": True, "torch": "2.5.1", "lightning": "2.4.0"}
SHOWN = {"pretrain_samples": "57,000", "val_samples": "3,000", "test_samples": "10,000", "steps": "1,335",
         "samples_seen": "341,760", "wall_time_s": "12 min 34 s", "finished": "finished"}


def fake_context(tmp_path: Path) -> SimpleNamespace:
    cfg = OmegaConf.create({"recipe": "byol-fashion-mnist", "seed": 0, "method": {"name": "byol"},
                            "data": {"name": "fashion-mnist"}, "model": {"encoder": "resnet18"},
                            "eval": {"knn_k": 200, "knn_temperature": 0.1, "map_points": 0}})
    return SimpleNamespace(cfg=cfg, run_dir=tmp_path, bank=[0] * 50, test=[0] * 20)


def write_metrics(path: Path, steps: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/loss", "train/lr", "val/probe_top1"])
        for s in range(steps):
            w.writerow([0, s, 5.0 - 0.1 * s, 0.1 * (s + 1) / steps, ""])
        w.writerow([0, steps - 1, "", "", 0.4])


# -- the header ----------------------------------------------------------------------------------
def test_report_opens_with_every_field_of_the_training_record(tmp_path):
    write_metrics(tmp_path / "metrics.csv", 5)
    write_report(fake_context(tmp_path), {"knn.top1": 0.8, "random_init.knn.top1": 0.5}, [], TRAINING)
    report = (tmp_path / "report.md").read_text()
    header = report[:report.index("| metric |")]  # before the results table
    for key, value in TRAINING.items():
        assert SHOWN.get(key, str(value)) in header, f"{key}={value} missing from the header:\n{header}"
    assert "batch 128 on 2 processes" in header and "6.00 passes over the pretrain split" in header
    assert "![training curves](plots/training.png)" in report


def test_header_of_an_unfinished_run_and_of_a_run_without_a_record():
    unfinished = "\n".join(run_header({**TRAINING, "finished": False, "world_size": 1, "wall_time_s": 12.34}))
    assert "not finished" in unfinished and "on 1 process:" in unfinished and "12.3 s" in unfinished
    assert "not recorded" in "\n".join(run_header({}))


# -- warnings where training did not help ---------------------------------------------------------
@pytest.mark.parametrize("key,label", [("knn.top1", "kNN top-1"), ("linear.top1", "linear-probe top-1"),
                                       ("mlp.top1", "MLP-probe top-1"), ("finetune.top1", "fine-tuning top-1"),
                                       ("lowshot.10pct.linear.top1", "10 % low-shot linear top-1"),
                                       ("regression.r2", "regression R²")])
def test_a_probe_below_random_init_is_called_out_and_one_above_is_not(key, label):
    below = baseline_warnings({key: 0.74, f"random_init.{key}": 0.85})
    assert len(below) == 1 and "Warning" in below[0]
    assert f"on {label} the trained encoder (0.7400) is below its random initialisation (0.8500)" in below[0]
    assert "training did not help this probe" in below[0]
    above = baseline_warnings({key: 0.85, f"random_init.{key}": 0.74})
    assert not any("Warning" in line for line in above) and "beats every baseline" in above[0]


def test_regression_mae_is_lower_is_better():
    worse = baseline_warnings({"regression.mae": 3.1, "random_init.regression.mae": 2.9})
    assert len(worse) == 1 and "regression MAE (lower is better)" in worse[0] and "(3.1000) is above" in worse[0]
    assert not any("Warning" in line for line in baseline_warnings({"regression.mae": 2.9,
                                                                    "random_init.regression.mae": 3.1}))


def test_raw_pixels_and_ties_are_called_out_too():
    out = baseline_warnings({"knn.top1": 0.6, "random_init.knn.top1": 0.6, "raw_pixels.knn.top1": 0.9})
    assert len(out) == 2
    assert "is level with its random initialisation (0.6000)" in out[0]
    assert "is below raw pixels (0.9000): the encoder adds nothing over its input" in out[1]


def test_per_layer_probes_compare_each_subject_at_its_best_stage():
    results = {"layer.block1.adaptive-max.linear.top1": 0.5, "layer.block4.adaptive-max.linear.top1": 0.7,
               "random_init.layer.block1.adaptive-max.linear.top1": 0.8,
               "random_init.layer.block4.adaptive-max.linear.top1": 0.6,
               "layer.block1.global-avg.linear.top1": 0.4, "random_init.layer.block1.global-avg.linear.top1": 0.3}
    out = baseline_warnings(results)  # each pooling compared on its own
    assert len(out) == 1 and "per-layer linear top-1, adaptive-max (best stage)" in out[0]
    assert "(0.7000 at block4) is below its random initialisation (0.8000 at block1)" in out[0]
    results["layer.block2.adaptive-max.linear.top1"] = 0.9
    assert not any("Warning" in line for line in baseline_warnings(results))


def test_no_comparison_no_sentence():
    assert baseline_warnings({"knn.top1": 0.5, "ctx0.rot.mrr": 0.2, "random_init.features.r2": 0.9}) == []


# -- every figure is a PNG -----------------------------------------------------------------------
def assert_png(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size
        image.verify()
    with Image.open(path) as image:
        assert len(image.convert("RGB").getcolors(1 << 20)) > 20, f"{path} looks blank"


def test_training_curves_label_their_axes_mark_short_series_and_show_the_learning_rate(tmp_path, monkeypatch):
    drawn = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: drawn.append(fig) or save(fig, path, **kw))
    series = {"train/loss": [(s, 1.0 / (s + 1)) for s in range(5)], "train/lr": [(s, 0.01 * s) for s in range(100)],
              "val/probe_top1": [(4, 0.4)]}
    path = plots.training_curves(series, CURVES, "t", tmp_path / "training.png")
    assert_png(path, (round(4.2 * 3 * 110), round(3.2 * 110)))
    panels = {ax.get_title(): ax for ax in drawn[0].axes if ax.get_title()}
    assert set(panels) == {"train/loss", "train/lr", "val/probe_top1"}
    for key, ax in panels.items():
        assert ax.get_xlabel() == "optimiser step" and ax.get_ylabel() == CURVES[key]
    assert panels["train/loss"].lines[0].get_marker() == "o" and panels["val/probe_top1"].lines[0].get_marker() == "o"
    assert panels["train/lr"].lines[0].get_marker() in (None, "None", "")  # 100 points: a plain line
    assert plots.training_curves({}, CURVES, "t", tmp_path / "none.png") is None


def test_training_curves_from_metrics_csv_lay_out_two_rows(tmp_path):
    write_metrics(tmp_path / "metrics.csv", 5)
    series = plots.read_metrics(tmp_path / "metrics.csv")
    series["train/embedding_std"] = series["train/effective_rank"] = series["train/loss"]
    assert len(series["train/lr"]) == 5 and series["val/probe_top1"] == [(4.0, 0.4)]
    assert_png(plots.training_curves(series, CURVES, "t", tmp_path / "t.png"), (round(4.2 * 3 * 110), round(6.4 * 110)))


def test_every_other_figure_writes_a_png(tmp_path):
    g = torch.Generator().manual_seed(0)
    features, labels = torch.randn(40, 8, generator=g), torch.arange(40) % 4
    assert_png(plots.embedding_map(features, labels, ["a", "b", "c", "d"], tmp_path / "map.png"), (660, 550))
    assert_png(plots.layer_curves({"trained": {"block1": 0.5, "block2": 0.7}, "random-init": {"block1": 0.4,
                                                                                             "block2": 0.3}},
                                  "layers", tmp_path / "layers.png"), (550, 352))
    t = torch.linspace(0.5, 5, 40)
    assert_png(plots.embedding_by_target(features, t, "freq", tmp_path / "target.png", "by target"), (1100, 462))
    curves = {"mrr": {"rot": [0.2, 0.3, 0.5], "none": [0.2, 0.2, 0.2]}, "r2": {"rot": [0.1, 0.5, float("nan")]}}
    assert_png(plots.context_length_curves([0, 2, 6], curves, {"r2": 0.3}, {"mrr": 0.18}, tmp_path / "ctx.png"),
               (round(3.6 * 2 * 110), round(3.0 * 110)))
    images = torch.rand(3, 1, 8, 8, generator=g)
    assert_png(plots.view_grid([("original", images, None), ("view", images * 4 - 2, ["x", "y", "z"])], "views",
                               tmp_path / "views.png"), (540, round(1.4 * 3 * 120)))


# -- matplotlib lives in eval/plots.py alone ------------------------------------------------------
def matplotlib_uses(root: Path) -> list[str]:
    """Every import of matplotlib outside eval/plots.py, and every pyplot import or
    ``matplotlib.use`` call anywhere under ``root`` (a ``selfsup`` package folder)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use"
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "matplotlib"):
                found.append(f"{rel}:{node.lineno} calls matplotlib.use")
            mpl = [n for n in names if n.split(".")[0] == "matplotlib"]
            if mpl and (rel != "eval/plots.py" or any(n.startswith("matplotlib.pyplot") for n in mpl)):
                found.append(f"{rel}:{node.lineno} imports {mpl[0]}")
    return found


def test_no_module_but_eval_plots_imports_matplotlib():
    assert matplotlib_uses(ROOT) == []


def test_the_matplotlib_check_catches_each_way_in(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "plots.py").write_text("from matplotlib.figure import Figure\nimport matplotlib.pyplot\n")
    (tmp_path / "eval" / "layers.py").write_text("def f():\n    from matplotlib import pyplot\n")
    (tmp_path / "x.py").write_text("import matplotlib\nmatplotlib.use('Agg')\n")
    assert matplotlib_uses(tmp_path) == ["eval/layers.py:2 imports matplotlib",
                                         "eval/plots.py:2 imports matplotlib.pyplot",
                                         "x.py:1 imports matplotlib", "x.py:2 calls matplotlib.use"]

