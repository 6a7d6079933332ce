"""The run as a user lives it: a visible config, switching methods, safe resume, extending a
finished run, loggers, a quiet console, one writer per run folder (issue 11; issue 15's lock)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfsup.config import ConfigError
from selfsup.engine.configure import compose_config
from selfsup.engine.run import Run, RunLocked
from selfsup.engine.train import resume, train

FAST = ["data.name=digits", "data.batch_size=64", "trainer.enable_progress_bar=false", "eval.map_points=0",
        "model.width=8", "method.proj_hidden_dim=64", "method.proj_dim=32", "optim.lr=0.1", "data.limit=400"]


def selfsup(*args, check=True, cwd=None):
    result = subprocess.run([sys.executable, "-m", "selfsup", *map(str, args)], capture_output=True, text=True,
                            timeout=600, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"selfsup {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "two-epochs"
    train(compose_config(None, [*FAST, "trainer.max_epochs=2", "eval.after_train=false", f"run.dir={run_dir}"]))
    return run_dir


def snapshot(run_dir: Path) -> dict:
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


# -- selfsup config / methods / method switching ------------------------------------------------
def test_config_prints_every_key_with_comments_and_the_method_keys():
    out = selfsup("config", "method.name=byol", "data.name=digits").stdout
    values = yaml.safe_load(out)
    assert values["method"]["name"] == "byol" and values["data"]["name"] == "digits"
    assert "momentum" in values["method"] and "temperature" not in values["method"]
    assert "# tau_base of the target network's EMA" in out
    assert values["trainer"]["max_epochs"] == compose_config().trainer.max_epochs


def test_train_help_says_where_the_keys_are():
    assert "selfsup config" in selfsup("train", "--help").stdout


def test_methods_lists_every_method_with_its_paper():
    lines = selfsup("methods").stdout.splitlines()
    names = {line.split("\t")[0]: line.split("\t")[1] for line in lines}
    assert {"simclr", "byol", "vicreg", "rotnet", "simper", "contextssl"} <= set(names)
    assert "ICML 2020" in names["simclr"] and "NeurIPS 2020" in names["byol"]


@pytest.mark.parametrize("method", ["byol", "vicreg", "barlow-twins", "rotnet"])
def test_setting_method_name_drops_the_recipes_keys_it_lacks(method):
    # the default recipe's method.temperature used to leak into methods without it
    cfg = compose_config(None, [f"method.name={method}"])
    assert cfg.method.name == method and "temperature" not in cfg.method


def test_a_key_the_user_gives_is_still_checked_after_a_switch():
    with pytest.raises(ConfigError, match="method.temperature"):
        compose_config(None, ["method.name=byol", "method.temperature=0.2"])


# -- resume --------------------------------------------------------------------------------------
def test_resume_refuses_a_model_change_before_writing_anything(finished_run):
    before = snapshot(finished_run)
    result = selfsup("train", "--resume", finished_run, "model.width=16", check=False)
    assert result.returncode == 2 and "model.width" in result.stderr and "cannot change on --resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(finished_run) == before
    selfsup("eval", finished_run, "eval.baselines=false")  # the folder still evaluates


def test_resume_refuses_a_wrongly_typed_value(finished_run):
    before = snapshot(finished_run)
    result = selfsup("train", "--resume", finished_run, "trainer.max_epochs=abc", check=False)
    assert result.returncode == 2 and "max_epochs" in result.stderr
    assert snapshot(finished_run) == before


def test_resume_of_a_finished_run_with_no_longer_length_writes_nothing(finished_run):
    before = snapshot(finished_run)
    resume(finished_run, ["trainer.max_epochs=2"])
    assert snapshot(finished_run) == before


def test_a_finished_run_can_be_extended(tmp_path, finished_run):
    import shutil

    run_dir = tmp_path / "extended"
    shutil.copytree(finished_run, run_dir)
    run = resume(run_dir, ["trainer.max_epochs=3"])
    assert run.training()["epochs"] == 3 and run.finished
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 3
    assert len(config["run"]["history"]) == 1 and "trainer.max_epochs=3" in config["run"]["history"][0]
    rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("train/lr")]
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and max(steps) > Run.open(finished_run).training()["steps"]
    # the cosine is planned over the longer run: where the old plan had reached 0 (its last step),
    # the longer one is still well above it
    old_end = Run.open(finished_run).training()["steps"]
    assert float(next(r for r in rows if int(r["step"]) == old_end)["train/lr"]) > 0.01


def test_resume_applies_a_new_learning_rate(tmp_path):
    run_dir = tmp_path / "lr"
    train(compose_config(None, [*FAST, "trainer.max_epochs=1", "eval.after_train=false", "optim.warmup_epochs=0",
                                f"run.dir={run_dir}"]))
    resume(run_dir, ["trainer.max_epochs=2", "optim.lr=0.001"])
    rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("train/lr")]
    first_epoch, second_epoch = [float(r["train/lr"]) for r in rows if r["epoch"] == "0"], \
        [float(r["train/lr"]) for r in rows if r["epoch"] == "1"]
    assert max(first_epoch) == pytest.approx(0.1, rel=1e-5) and max(second_epoch) <= 0.001 + 1e-9


# -- one writer per run folder, temp files, failed starts ------------------------------------------
def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, finished_run):
    import shutil

    run_dir = tmp_path / "locked"
    shutil.copytree(finished_run, run_dir)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename, "started": "x"}))
        with pytest.raises(RunLocked, match=str(sleeper.pid)):
            resume(run_dir, ["trainer.max_epochs=3"])
    finally:
        sleeper.kill()
        sleeper.wait()
    (run_dir / "checkpoints" / ".last.ckpt.abc.tmp").write_bytes(b"half")
    resume(run_dir, ["trainer.max_epochs=3"])  # the dead process's lock is taken over
    assert not (run_dir / ".lock").exists() and not list(run_dir.rglob("*.tmp"))


def test_a_failed_start_leaves_no_run_folder(tmp_path):
    run_dir = tmp_path / "failed"
    result = selfsup("train", "data.name=image-folder", f"data.root={tmp_path / 'missing'}", f"run.dir={run_dir}",
                     check=False)
    assert result.returncode == 2 and not run_dir.exists()


# -- loggers and the console ---------------------------------------------------------------------
def test_csv_and_tensorboard_loggers_and_the_lr_every_step_of_a_short_run(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "tb"
    train(compose_config(None, [*FAST, "trainer.max_steps=4", "eval.after_train=false", "run.loggers=[csv,tensorboard]",
                                f"run.dir={run_dir}"]))
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["step"]) for r in rows if r.get("train/loss")] == [0, 1, 2, 3]
    assert all(float(r["train/lr"]) > 0 for r in rows if r.get("train/lr"))


def test_an_unknown_logger_is_a_clear_error(tmp_path):
    result = selfsup("train", *FAST, "run.loggers=[csv,tensorbored]", f"run.dir={tmp_path / 'r'}", check=False)
    assert result.returncode == 2 and "tensorbored" in result.stderr and "tensorboard" in result.stderr


def test_the_console_is_quiet_and_names_the_run_folder_first(tmp_path):
    run_dir = tmp_path / "quiet"
    result = selfsup("train", *[a for a in FAST if "progress_bar" not in a], "trainer.max_steps=2",
                     "eval.baselines=false", f"run.dir={run_dir}")
    out = result.stdout.splitlines()
    assert out[0] == f"run folder: {run_dir}"
    assert any(line.startswith("knn.top1") for line in out)
    for noise in ("Tip", "GPU available", "TPU available", "| Name", "Trainable params", "Epoch 0"):
        assert noise not in result.stdout, noise
    assert "Tip" not in result.stderr and "Trainable params" not in result.stderr
    assert "Epoch 0" in result.stderr  # the progress bar is drawn on stderr


# -- one command: the config composed once, the data built once, the checkpoint read once ------
def counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_train_and_its_evaluation_build_config_and_data_once(tmp_path, monkeypatch):
    import selfsup.engine.configure as configure
    import selfsup.engine.run as run_module
    from selfsup.cli import main

    configs = counting(monkeypatch, configure, "build_config")
    data = counting(monkeypatch, run_module, "build_data")
    assert main(["train", *FAST, "trainer.max_steps=2", "eval.baselines=false", f"run.dir={tmp_path / 'once'}"]) == 0
    assert len(configs) == 1 and len(data) == 1
    assert (tmp_path / "once" / "eval.json").exists()


def test_resume_reads_the_checkpoint_once(finished_run, tmp_path, monkeypatch):
    import shutil

    import selfsup.engine.checkpoint as checkpoint
    import selfsup.engine.train as training

    run_dir = tmp_path / "read-once"
    shutil.copytree(finished_run, run_dir)
    reads = counting(monkeypatch, checkpoint, "load_checkpoint_file")
    checks = counting(monkeypatch, training, "load_checkpoint_file")
    resume(run_dir, ["trainer.max_epochs=3"])
    # read once (and so checked) before anything is written, then handed to Lightning's restore;
    # the step count comes from checkpoints/last.json
    assert len(reads) + len(checks) == 1


@pytest.mark.parametrize("limit,batch_size,loaded,epochs", [(80, 256, 80, 3), (400, 64, 64, 0)])
def test_training_json_counts_the_batch_loaded_and_only_complete_epochs(tmp_path, limit, batch_size, loaded, epochs):
    """3 steps on a pretrain split smaller than data.batch_size (80 digits) load it whole, one
    step an epoch: 3 epochs of 80; on 400 digits at batch 64 (6 steps an epoch) they complete none."""
    run = train(compose_config(None, [*FAST, f"data.limit={limit}", f"data.batch_size={batch_size}", "trainer.max_steps=3",
                                      "trainer.max_epochs=100", "eval.after_train=false", f"run.dir={tmp_path / 'run'}"]))
    t = run.training()
    assert t["pretrain_samples"] == limit
    assert (t["steps"], t["batch_size"], t["samples_seen"], t["epochs"]) == (3, loaded, 3 * loaded, epochs)
