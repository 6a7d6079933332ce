"""Clusters: `torchrun --nproc_per_node=2 selfsup train` (gloo, CPU) is the run Lightning's own
DDP launch gives; the run folder, its lock and the evaluation happen once."""
import shutil
import subprocess
import sys

import pytest
import torch

from selfsup.engine.checkpoint import load_checkpoint_file

ARGS = ["train", "data.name=digits", "data.batch_size=32", "trainer.enable_progress_bar=false", "eval.map_points=0",
        "model.width=8", "method.proj_hidden_dim=64", "method.proj_dim=32", "optim.lr=0.1",
        "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.devices=2", "trainer.strategy=ddp",
        "trainer.max_steps=3", "trainer.log_every_n_steps=1", "optim.lr_scaling=linear"]


def launch(command, cwd):
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_torchrun_matches_lightnings_ddp(tmp_path):
    lightning_dir = tmp_path / "lightning"
    launch([sys.executable, "-m", "selfsup", *ARGS, "eval.after_train=false", f"run.dir={lightning_dir}"], tmp_path)
    # no run.dir: both processes name the folder after torchrun's rendezvous id
    result = launch(["torchrun", "--standalone", "--nproc_per_node=2", "-m", "selfsup", *ARGS, "eval.baselines=false",
                     "eval.limit=200"], tmp_path)
    (torchrun_dir,) = (tmp_path / "runs").iterdir()
    assert torchrun_dir.name.startswith("simclr-fashion-mnist-torchrun-")
    # rank 0 alone names the run folder (first, and again after the results) and evaluates
    assert result.stdout.count("run folder:") == 2 and result.stdout.count("evaluating 1/") == 1
    assert (torchrun_dir / "eval.json").exists() and not (torchrun_dir / ".lock").exists()
    ours, theirs = (load_checkpoint_file(d / "checkpoints" / "last.ckpt") for d in (torchrun_dir, lightning_dir))
    assert ours["global_step"] == theirs["global_step"] == 3
    for name, value in theirs["state_dict"].items():
        torch.testing.assert_close(ours["state_dict"][name], value, rtol=0, atol=1e-6, msg=name)
    # optim.lr_scaling=linear: 0.1 x (32 x 2) / 256 at the peak of the schedule
    assert ours["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.1 * 64 / 256)
