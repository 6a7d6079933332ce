"""The user's own data, end to end from the CLI (`selfsup train` + its evaluation): a flat
unlabelled folder, nested class folders with loose images, a labels CSV (30 % labelled, SupCon),
signals with a targets CSV and a tiny video folder (SimPer) each end with eval.json and report.md;
probes that need class labels are skipped with the reason where there are none."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from selfsup.cli import main

TINY = ["trainer.max_steps=2", "data.batch_size=16", "eval.map_points=0", "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu", "trainer.precision=32-true"]
IMAGES = [*TINY, "model.width=8", "method.proj_hidden_dim=32", "method.proj_dim=16"]


def write_images(folder, count, level=None, seed=0):
    """``count`` 16 px RGB images: noise around ``level`` (0..255) or uniform noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (16, 16, 3)) if level is None else np.clip(rng.normal(level, 20, (16, 16, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{seed}_{i}.png")
    return sorted(p.relative_to(folder) for p in folder.glob("*.png"))


def train_and_eval(run_dir, *args) -> dict:
    assert main(["train", *args, f"run.dir={run_dir}"]) == 0
    assert (run_dir / "report.md").exists()
    return json.loads((run_dir / "eval.json").read_text())


def assert_no_label_probes(results):
    for probe in ("knn", "linear", "online_probe"):
        assert "class labels" in results[f"skipped.{probe}"]
    assert "knn.top1" not in results and "linear.top1" not in results


def test_flat_unlabelled_folder_from_the_command_line(tmp_path):
    write_images(tmp_path / "photos", 60)  # 12 test images: enough for the uncoloured map
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "selfsup", "train", "data.name=image-folder",
                          f"data.root={tmp_path / 'photos'}", *IMAGES, "eval.map_points=12", f"run.dir={run_dir}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "skipped.knn" in out.stdout and "needs class labels" in out.stdout
    results = json.loads((run_dir / "eval.json").read_text())
    assert_no_label_probes(results)
    for key in ("effective_rank", "embedding_std", "uniformity", "alignment"):
        assert isinstance(results[f"unsupervised.{key}"], float), key
    assert 1.0 <= results["unsupervised.effective_rank"] and -4.0 <= results["unsupervised.uniformity"] <= 0.0
    report = (run_dir / "report.md").read_text()
    assert "## Without labels" in report and "- **knn**: needs class labels" in report
    assert (run_dir / "plots" / "retrieval.png").stat().st_size > 0
    assert "![t-SNE of unlabelled test embeddings](plots/embedding_map.png)" in report


def test_nested_class_folders_with_loose_images(tmp_path, one_thread):
    root = tmp_path / "data"
    write_images(root / "dark" / "a" / "b", 20, level=40, seed=1)
    write_images(root / "bright" / "c", 20, level=210, seed=2)
    write_images(root, 8, seed=3)  # loose images at a labelled root: unlabelled, used for SSL
    results = train_and_eval(tmp_path / "run", "data.name=image-folder", f"data.root={root}", *IMAGES)
    assert 0.0 <= results["knn.top1"] <= 1.0 and "linear.top1" in results
    assert not any(k.startswith("skipped.") for k in results if k != "skipped.alignment")
    assert "unsupervised.uniformity" in results


def test_labels_csv_thirty_percent_labelled_with_supcon(tmp_path, one_thread):
    root = tmp_path / "data"
    paths = write_images(root / "x", 30, level=40, seed=1) + write_images(root / "y", 30, level=210, seed=2)
    rows = ["path,label"]
    for i, path in enumerate(paths):  # every third image labelled (its class by its level), the rest empty
        rows.append(f"{'x' if i < 30 else 'y'}/{path},{('dark' if i < 30 else 'bright') if i % 10 < 3 else ''}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    results = train_and_eval(tmp_path / "run", "supcon-fashion-mnist", "data.name=image-folder", f"data.root={root}",
                             f"data.labels={tmp_path / 'labels.csv'}", "data.labelled_fraction=null", *IMAGES)
    assert 0.0 <= results["knn.top1"] <= 1.0 and "linear.top1" in results
    assert "skipped.knn" not in results and "skipped.online_probe" not in results


def sinusoids(n, steps, fps, seed=0):
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.5, 3.0, n)
    t = np.arange(steps) / fps
    return np.sin(2 * np.pi * freq[:, None] * t + rng.uniform(0, np.pi, (n, 1))).astype(np.float32), freq


def test_signals_with_a_targets_csv_with_simper(tmp_path, one_thread):
    x, freq = sinusoids(48, 64, 16.0)
    np.save(tmp_path / "signals.npy", x)
    (tmp_path / "targets.csv").write_text("freq\n" + "".join(f"{float(f)!r}\n" for f in freq))
    results = train_and_eval(tmp_path / "run", "simper-ppg", "data.name=signals", f"data.root={tmp_path / 'signals.npy'}",
                             "data.fps=16", "data.seconds=null", f"data.targets={tmp_path / 'targets.csv'}", *TINY)
    assert "regression.r2" in results and "regression.mae" in results
    assert_no_label_probes(results)
    assert "skipped.alignment" in results  # SimPer's views are speed-changed clips, not two of the input's shape
    assert main(["eval", str(tmp_path / "run"), "eval.map_points=0", "--layers"]) == 0  # per-layer: regression only
    results = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert "class labels" in results["skipped.layers.linear"]
    assert any(k.startswith("layer.") and k.endswith(".regression.r2") for k in results)
    assert "## Per-layer" in (tmp_path / "run" / "report.md").read_text()


def test_tiny_video_folder_with_simper(tmp_path, one_thread):
    pytest.importorskip("av")
    from test_video_folder import write_video

    speeds = [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]
    for k, speed in enumerate(speeds):
        write_video(tmp_path / "videos" / f"{k}.mp4", frames=20, speed=speed)
    (tmp_path / "targets.csv").write_text("path,speed\n" + "".join(f"{k}.mp4,{s}\n" for k, s in enumerate(speeds)))
    results = train_and_eval(tmp_path / "run", "simper-rotating-digits", "data.name=video-folder",
                             f"data.root={tmp_path / 'videos'}", f"data.targets={tmp_path / 'targets.csv'}",
                             "data.fps=5", "data.seconds=2", "data.image_size=16", "model.encoder=simper-featurizer",
                             *TINY)
    assert "regression.r2" in results
    assert_no_label_probes(results)
