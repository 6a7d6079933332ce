"""End to end: the `selfsup` command on tiny data (a few seconds per run)."""
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from selfsup.engine.configure import compose_config
from selfsup.engine.checkpoint import load_checkpoint_file
from selfsup.engine.train import train

FAST = ["data.name=digits", "data.batch_size=64", "trainer.enable_progress_bar=false", "eval.map_points=0",
        "model.width=8", "method.proj_hidden_dim=64", "method.proj_dim=32", "optim.lr=0.1",
        "trainer.log_every_n_steps=5"]
HERE = Path(__file__).parent


def selfsup(*args, check=True, env=None):
    result = subprocess.run([sys.executable, "-m", "selfsup", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"selfsup {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def killed_run(when, *overrides):
    return subprocess.run([sys.executable, str(HERE / "killed_run.py"), when, *map(str, overrides)],
                          capture_output=True, text=True, timeout=600)


def read_eval(run_dir) -> dict:
    return json.loads((Path(run_dir) / "eval.json").read_text())


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    selfsup("train", *FAST, "trainer.max_epochs=2", "eval.map_points=200", f"run.dir={run_dir}")
    return run_dir


def test_train_writes_the_whole_run_folder(digits_run):
    for name in ("config.yaml", "checkpoints/last.ckpt", "metrics.csv", "encoder.safetensors", "eval.json",
                 "report.md", "plots/training.png", "plots/embedding_map.png"):
        assert (digits_run / name).exists(), name
    results = read_eval(digits_run)
    for key in ("knn.top1", "knn.top5", "linear.top1", "random_init.knn.top1", "random_init.linear.top1",
                "raw_pixels.knn.top1", "raw_pixels.linear.top1"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["knn.top1"] > 0.3 and results["linear.top1"] > 0.3  # chance is 0.1
    assert all(k == k.lower() and k.isascii() for k in results)
    report = (digits_run / "report.md").read_text()
    assert "kNN top-1" in report and "random-init" in report and "raw pixels" in report


def test_checkpoint_has_full_state_and_loads_weights_only(digits_run):
    ckpt = load_checkpoint_file(digits_run / "checkpoints" / "last.ckpt")
    assert {"state_dict", "optimizer_states", "lr_schedulers", "loops", "rng_torch"} <= set(ckpt)
    assert not list((digits_run / "checkpoints").glob("*.tmp"))


def test_loss_falls_and_the_online_probe_reports_on_validation(digits_run):
    rows = list(csv.DictReader(open(digits_run / "metrics.csv")))
    losses = [float(r["train/epoch_loss"]) for r in rows if r.get("train/epoch_loss")]
    assert len(losses) == 2 and losses[-1] < losses[0]
    probe = [float(r["val/probe_top1"]) for r in rows if r.get("val/probe_top1")]
    assert len(probe) == 2 and probe[-1] > 0.2  # chance is 0.1
    assert any(r.get("train/effective_rank") for r in rows) and any(r.get("train/embedding_std") for r in rows)


def test_eval_again_gives_identical_values(digits_run, tmp_path):
    before = read_eval(digits_run)
    (digits_run / "eval.json").unlink()
    selfsup("eval", digits_run)
    assert read_eval(digits_run) == before


def test_eval_limit_caps_bank_and_test_and_merges_into_eval_json(digits_run):
    before = read_eval(digits_run)
    selfsup("eval", digits_run, "eval.limit=100", "eval.baselines=false")
    results = read_eval(digits_run)
    protocol = json.loads((digits_run / "eval_protocol.json").read_text())
    assert protocol["knn.top1"]["limit"] == 100 and protocol["knn.top1"]["bank"] == 100
    # keys this evaluation did not compute are kept, with the protocol they were computed under
    assert results["random_init.knn.top1"] == before["random_init.knn.top1"]
    assert protocol["random_init.knn.top1"]["limit"] is None and protocol["random_init.knn.top1"]["bank"] > 100
    assert set(before) <= set(results)
    assert "bank 100 training samples, 100 test samples" in (digits_run / "report.md").read_text()


def test_load_encoder_and_embed(digits_run, tmp_path):
    from selfsup import load_encoder
    from selfsup.engine.run import Run

    encoder = load_encoder(digits_run)
    assert encoder(torch.rand(2, 1, 8, 8)).shape == (2, encoder.feature_dim)
    splits = Run.open(digits_run).splits()  # the run's own data and seed
    out = tmp_path / "features.npy"
    result = selfsup("embed", digits_run, "--out", out)
    assert str(out) in result.stdout and str(tmp_path / "features.rows.csv") in result.stdout
    features = np.load(out)
    rows = list(csv.DictReader(open(tmp_path / "features.rows.csv")))
    assert features.shape == (len(splits.train) + len(splits.test), encoder.feature_dim) == (len(rows), features.shape[1])
    assert [r["split"] for r in rows] == ["train"] * len(splits.train) + ["test"] * len(splits.test)
    assert [int(r["label"]) for r in rows[len(splits.train):]] == splits.test.labels.tolist()
    expected = encoder(splits.test.load(torch.arange(3)).float() / 255).detach().numpy()
    np.testing.assert_allclose(features[len(splits.train):][:3], expected, atol=1e-4)
    selfsup("embed", digits_run, "--split", "test", "--out", tmp_path / "test.csv")
    table = list(csv.reader(open(tmp_path / "test.csv")))
    assert table[0][:3] == ["index", "label", "split"] and len(table) == 1 + len(splits.test)
    np.testing.assert_allclose(np.array(table[1][3:6], dtype=float), expected[0, :3], rtol=1e-5, atol=1e-6)
    pq = pytest.importorskip("pyarrow.parquet")
    selfsup("embed", digits_run, "--split", "train", "--out", tmp_path / "train.parquet")
    assert pq.read_table(tmp_path / "train.parquet").num_rows == len(splits.train)
    bad = selfsup("embed", digits_run, "--out", tmp_path / "x.txt", check=False)
    assert bad.returncode == 2 and ".npy" in bad.stderr and not (tmp_path / "x.txt").exists()


def test_resume_from_a_mid_epoch_checkpoint_ends_like_an_uninterrupted_run(tmp_path):
    # 570 pre-training samples / 64 = 8 steps an epoch: step 4 is the middle of the first epoch
    args = [*FAST, "data.limit=600", "trainer.max_epochs=2", "eval.baselines=false", "trainer.ckpt_every_n_steps=2"]
    selfsup("train", *args, f"run.dir={tmp_path / 'straight'}")
    killed = killed_run("step:4", *args, f"run.dir={tmp_path / 'killed'}")
    assert killed.returncode == -signal.SIGKILL
    ckpt = load_checkpoint_file(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 4 and ckpt["epoch"] == 0
    selfsup("train", "--resume", tmp_path / "killed")
    straight, resumed = read_eval(tmp_path / "straight"), read_eval(tmp_path / "killed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert resumed[key] == pytest.approx(straight[key], abs=1e-4), key
    rows = {name: [(r["step"], r["train/loss"]) for r in csv.DictReader(open(tmp_path / name / "metrics.csv"))
                   if r.get("train/loss")] for name in ("straight", "killed")}
    assert rows["killed"] == rows["straight"]  # the same batches, in the same order, after the resume


def test_resume_completes_a_run_whose_eval_did_not_run(tmp_path):
    run_dir = tmp_path / "noeval"
    assert killed_run("fit_end", *FAST, "trainer.max_steps=3", f"run.dir={run_dir}").returncode == -signal.SIGKILL
    assert not (run_dir / "eval.json").exists()
    selfsup("train", "--resume", run_dir)
    assert "knn.top1" in read_eval(run_dir)
    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 3


def test_eval_after_train_can_be_turned_off(tmp_path):
    run_dir = tmp_path / "off"
    selfsup("train", *FAST, "trainer.max_steps=2", "eval.after_train=false", f"run.dir={run_dir}")
    assert (run_dir / "encoder.safetensors").exists() and not (run_dir / "eval.json").exists()


def test_two_ddp_processes_on_the_cpu(tmp_path):
    run_dir = tmp_path / "ddp"
    result = selfsup("train", "data.name=digits", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                     "trainer.max_steps=3", *FAST[1:], f"run.dir={run_dir}")
    assert "knn.top1" in read_eval(run_dir)
    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 3
    # rank 0 alone names the run folder (first, and again after the results) and evaluates
    assert result.stdout.count("run folder:") == 2 and result.stdout.startswith("run folder:")


def test_bf16_mixed_precision(tmp_path):
    run_dir = tmp_path / "bf16"
    selfsup("train", *FAST, "trainer.precision=bf16-mixed", "trainer.max_steps=3", "eval.baselines=false",
            f"run.dir={run_dir}")
    assert "knn.top1" in read_eval(run_dir)


def test_default_run_folder_name(tmp_path):
    result = subprocess.run([sys.executable, "-m", "selfsup", "train", *FAST, "trainer.max_steps=1",
                             "eval.after_train=false"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("simclr-fashion-mnist-")


def test_checkpoint_every_n_steps(tmp_path):
    seen = {}

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 2:
                seen["step"] = load_checkpoint_file(tmp_path / "r" / "checkpoints" / "last.ckpt")["global_step"]

    cfg = compose_config(None, [*FAST, "trainer.max_epochs=1", "trainer.ckpt_every_n_steps=2", f"run.dir={tmp_path / 'r'}"])
    train(cfg, callbacks=[Spy()])
    assert seen["step"] == 2


def test_unknown_key_is_a_clear_error():
    result = selfsup("train", "data.nme=digits", check=False)
    assert result.returncode == 2 and "data.nme" in result.stderr and "data.name" in result.stderr


def test_missing_dataset_is_a_clear_error(tmp_path):
    result = selfsup("train", "data.name=image-folder", f"data.root={tmp_path / 'nothing'}", f"run.dir={tmp_path / 'r'}",
                     check=False)
    assert result.returncode == 2 and "is not a folder" in result.stderr


def test_nan_loss_is_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    run_dir = tmp_path / "nan"
    result = selfsup("train", *FAST, "optim.lr=1e30", "trainer.max_epochs=3", f"run.dir={run_dir}", check=False)
    assert result.returncode == 2 and "loss is nan" in result.stderr.lower() and "optim.lr" in result.stderr


def test_corrupt_checkpoint_on_resume_is_named(digits_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(digits_run, broken)
    (broken / "encoder.safetensors").unlink()
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"\x00garbage")
    result = selfsup("train", "--resume", broken, check=False)
    assert result.returncode == 2 and "last.ckpt" in result.stderr and "corrupt" in result.stderr


def test_show_views_recipes_and_datasets(tmp_path):
    out = tmp_path / "views.png"
    selfsup("show-views", "data.name=digits", "--out", out, "--samples", "4")
    assert out.stat().st_size > 1000
    selfsup("show-views", "rotnet-fashion-mnist", "data.name=digits", "--out", tmp_path / "rotations.png", "--samples", "2")
    assert (tmp_path / "rotations.png").stat().st_size > 1000
    recipes = selfsup("recipes").stdout.splitlines()
    assert recipes[0].split("\t")[0] and any(line.startswith("simclr-fashion-mnist\t") for line in recipes)
    datasets = [line.split("\t")[0] for line in selfsup("datasets").stdout.splitlines()]
    assert {"fashion-mnist", "mnist", "digits", "cifar10", "cifar100", "image-folder"} <= set(datasets)
