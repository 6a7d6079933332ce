"""Hostile-but-fair mistakes against the CLI (issue 15): every one exits non-zero with one
``selfsup: error:`` line naming the thing (no traceback), and a run folder that existed before
is byte-for-byte unchanged. Run in-process through ``selfsup.cli.main``; one tiny finished run
(digits, 2 steps) is shared by the cases that need a run folder. Beside the table: Hypothesis
properties of the config parser and the dataset readers, and a checkpoint writer that fails
mid-run (disk full), then ``--resume``."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from selfsup import cli
from selfsup.config.schema import DataConfig
from selfsup.engine import checkpoint as checkpoint_module
from selfsup.engine.configure import compose_config, run_config

TINY = ["data.name=digits", "data.limit=200", "data.batch_size=32", "model.width=8", "method.proj_hidden_dim=32",
        "method.proj_dim=16", "optim.lr=0.1", "trainer.enable_progress_bar=false", "eval.map_points=0",
        "eval.baselines=false", "eval.online_knn_samples=0"]


def call(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        rc = exit_.code
    out, err = capsys.readouterr()
    return rc, out, err


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def png(path: Path, mode: str = "L", value: int = 0, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, (size, size), colour).save(path)


def rewrite_encoder(run_dir: Path, change: Callable[[dict, dict], None]) -> None:
    path = run_dir / "encoder.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["selfsup"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    change(meta, state)
    save_file(state, str(path), metadata={"selfsup": json.dumps(meta)})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A finished tiny run, damaged copies of it, and small data folders."""
    base = tmp_path_factory.mktemp("fuzz")
    run = base / "run"
    assert cli.main(["train", *TINY, "trainer.max_steps=2", f"run.dir={run}"]) == 0
    paths = {"run": run, "base": base, "empty": base / "empty"}
    paths["empty"].mkdir()
    for name, damage in {
        "wrong_weights": lambda: rewrite_encoder(paths[name], lambda m, s: m["model"].update(width=16)),
        "no_spec": lambda: rewrite_encoder(paths[name], lambda m, s: m.pop("spec")),
        "missing_tensor": lambda: rewrite_encoder(paths[name], lambda m, s: s.pop(sorted(s)[0])),
        "garbage_encoder": lambda: (paths[name] / "encoder.safetensors").write_bytes(os.urandom(300)),
        "no_encoder": lambda: (paths[name] / "encoder.safetensors").unlink(),
        "bad_yaml": lambda: (paths[name] / "config.yaml").write_text("data: [unclosed\n"),
        "list_yaml": lambda: (paths[name] / "config.yaml").write_text("- 1\n- 2\n"),
        "python_yaml": lambda: (paths[name] / "config.yaml").write_text("seed: !!python/object/apply:os.getpid []\n"),
        "unknown_key_yaml": lambda: (paths[name] / "config.yaml").write_text(
            (run / "config.yaml").read_text() + "colour: blue\n"),
        "corrupt_ckpt": lambda: (paths[name] / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 torn"),
    }.items():
        paths[name] = base / name
        shutil.copytree(run, paths[name])
        damage()
    for i in range(4):  # one class only
        png(base / "one-class" / "only" / f"{i}.png", value=40 * i)
    for label in ("a", "b"):  # colour images, for a grey encoder
        for i in range(3):
            png(base / "rgb" / label / f"{i}.png", mode="RGB", value=50 * i)
    (base / "rgb-bad" / "a").mkdir(parents=True)
    shutil.copytree(base / "rgb" / "a", base / "rgb-bad" / "b")
    (base / "rgb-bad" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (base / "not-a-run.txt").write_text("x")
    return paths


@dataclass
class Case:
    name: str
    argv: Callable[[dict], list]  # paths -> argv
    message: str  # regex the one error line must match
    rc: int = 2
    unchanged: str | None = None  # the paths key of a folder that must stay byte-for-byte the same
    setup: Callable[[dict], None] | None = None
    teardown: Callable[[dict], None] | None = None
    new_dir: bool = True  # a train case: its run.dir must not exist afterwards
    skip: Callable[[], bool] = field(default=lambda: False)


def new(*overrides: str) -> Callable[[dict], list]:
    return lambda p: ["train", *TINY, "trainer.max_steps=1", *overrides, f"run.dir={p['base'] / 'new'}"]


def new_method(name: str, *overrides: str, folder: str = "new") -> Callable[[dict], list]:
    """``new`` for another method: TINY without its SimCLR keys."""
    return lambda p: ["train", *[a for a in TINY if not a.startswith("method.")], "trainer.max_steps=1",
                      f"method.name={name}", *overrides, f"run.dir={p['base'] / folder}"]


def on_run(command: str, *args: str, run: str = "run") -> Callable[[dict], list]:
    return lambda p: [command, p[run], *[a.format(**p) for a in args]]


def resume(*overrides: str, run: str = "run") -> Callable[[dict], list]:
    return lambda p: ["train", "--resume", p[run], *overrides]


def live_lock(p: dict) -> None:  # another live process (pytest's parent) holds the run
    (p["run"] / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                "started": "2026-01-01 00:00:00"}))


def drop_lock(p: dict) -> None:
    (p["run"] / ".lock").unlink(missing_ok=True)


KEY_AND_RANGE = [
    Case("typo in a key", new("data.batch_sze=32"), r"unknown config key 'data.batch_sze'.*data.batch_size"),
    Case("typo in a section", new("dat.name=digits"), r"unknown config key 'dat'.*Did you mean: data"),
    Case("typo in a trainer key", new("trainer.max_epocs=2"), r"trainer.max_epochs"),
    Case("a managed trainer key", new("trainer.callbacks=[x]"), r"unknown config key 'trainer.callbacks'"),
    Case("typo in a method key", new("method.temprature=0.2"), r"method.temperature"),
    Case("key of another method", new("method.name=byol", "method.temperature=0.2"), r"method.temperature"),
    Case("typo in a method name", new("method.name=simclrr"), r"unknown method.name 'simclrr'.*simclr"),
    Case("typo in a recipe", lambda p: ["train", "simclr-fashon-mnist"], r"unknown recipe.*simclr-fashion-mnist"),
    Case("missing recipe file", lambda p: ["train", str(p["base"] / "mine.yaml")], r"mine.yaml does not exist"),
    Case("override without =", lambda p: ["train", "simclr-fashion-mnist", "data.limit"], r"'data.limit' is not of "
         r"the form key=value"),
    Case("override starting with =", new("=5"), r"'=5' is not of the form key=value"),
    Case("a section given a value", new("augment=5"), r"'augment' is a section"),
    Case("an unclosed interpolation", new("data.limit=${"), r"override 'data.limit=\$\{' cannot be parsed"),
    Case("an unclosed list", new("augment.crop_scale=[0.2,"), r"override 'augment.crop_scale=\[0.2,' cannot be parsed"),
    Case("a number as the method", new("method.name=1"), r"unknown method.name 1\b"),
    Case("seed not a number", new("seed=abc"), r"config key 'seed'"),
    Case("batch size not a number", new("data.batch_size=abc"), r"config key 'data.batch_size'"),
    Case("batch size 0", new("data.batch_size=0"), r"'data.batch_size': 0 is out of range; it must be >= 2"),
    Case("batch size 1", new("data.batch_size=1"), r"'data.batch_size': 1 is out of range"),
    Case("negative batch size", new("data.batch_size=-3"), r"'data.batch_size': -3 is out of range"),
    Case("val_fraction 1.5", new("data.val_fraction=1.5"), r"'data.val_fraction': 1.5 is out of range.*\[0, 1\)"),
    Case("val_fraction 1", new("data.val_fraction=1"), r"'data.val_fraction'"),
    Case("negative val_fraction", new("data.val_fraction=-0.1"), r"'data.val_fraction'"),
    Case("test_fraction 1", new("data.test_fraction=1.0"), r"'data.test_fraction'"),
    Case("labelled_fraction 0", new("data.labelled_fraction=0"), r"'data.labelled_fraction'.*\(0, 1\]"),
    Case("labelled_fraction 1.5", new("data.labelled_fraction=1.5"), r"'data.labelled_fraction'"),
    Case("limit 0", new("data.limit=0"), r"'data.limit'"),
    Case("image_size 0", new("data.image_size=0"), r"data.image_size"),
    Case("negative num_workers", new("data.num_workers=-1"), r"data.num_workers"),
    Case("width 0", new("model.width=0"), r"'model.width': 0 is out of range"),
    Case("typo in an encoder", new("model.encoder=resnet99"), r"unknown encoder 'resnet99'.*resnet18"),
    Case("unknown optimiser", new("optim.name=adam"), r"optim.name 'adam'.*adamw"),
    Case("negative lr", new("optim.lr=-1"), r"'optim.lr': -1.0 is out of range; it must be > 0"),
    Case("lr 0", new("optim.lr=0"), r"'optim.lr'"),
    Case("infinite lr", new("optim.lr=inf"), r"'optim.lr'"),
    Case("momentum 1.5", new("optim.momentum=1.5"), r"'optim.momentum'"),
    Case("one beta", new("optim.name=adamw", "optim.betas=[0.9]"), r"'optim.betas'.*pair"),
    Case("one crop scale", new("augment.crop_scale=[0.5]"), r"'augment.crop_scale'.*pair"),
    Case("crop scale reversed", new("augment.crop_scale=[0.9,0.1]"), r"'augment.crop_scale'.*low <= high"),
    Case("probability 2", new("augment.hflip_prob=2"), r"'augment.hflip_prob'.*\[0, 1\]"),
    Case("per-view probability 1.5", new("augment.view_blur_prob=[1.0,1.5]"), r"'augment.view_blur_prob'"),
    Case("simclr with one view", new("augment.num_views=1"),
         r"'augment.num_views': 1 is too few for method.name=simclr; it needs >= 2 .*: set augment.num_views=2"),
    Case("simclr with three views", new("augment.num_views=3"),
         r"'augment.num_views': 3 is more than method.name=simclr uses; it takes <= 2 .*: set augment.num_views=2"),
    Case("byol with one view", new_method("byol", "augment.num_views=1"),
         r"'augment.num_views': 1 is too few for method.name=byol.*set augment.num_views=2"),
    Case("dino with one crop", new_method("dino", "augment.num_global_crops=1", "augment.num_local_crops=0"),
         r"'augment.num_global_crops' \+ 'augment.num_local_crops': 1 \+ 0 = 1 is too few for method.name=dino; "
         r"it needs >= 2 .*: set augment.num_local_crops=1"),
    Case("exemplar with one view", new_method("exemplar", "augment.num_views=1"),
         r"'augment.num_views': 1 is too few for method.name=exemplar.*set augment.num_views=2"),
    Case("simper with one speed", lambda p: ["train", "simper-rotating-digits", "method.num_speeds=1",
                                             f"run.dir={p['base'] / 'new'}"],
         r"'method.num_speeds': 1 is too few for method.name=simper.*set method.num_speeds=2"),
    Case("max_epochs not a number", new("trainer.max_epochs=abc"), r"'trainer.max_epochs': 'abc'.*Optional\[int\]"),
    Case("devices 0", new("trainer.devices=0"), r"trainer.*devices=0"),
    Case("gpu on a CPU", new("trainer.accelerator=gpu"), r"trainer.* settings cannot run here",
         skip=torch.cuda.is_available),
    Case("checkpoint every 0 steps", new("trainer.ckpt_every_n_steps=0"), r"'trainer.ckpt_every_n_steps'"),
    Case("checkpoint every abc steps", new("trainer.ckpt_every_n_steps=abc"), r"'trainer.ckpt_every_n_steps'"),
    Case("eval.limit 1", new("eval.limit=1"), r"'eval.limit': 1 is out of range; it must be >= 2"),
    Case("knn_k 0", new("eval.knn_k=0"), r"'eval.knn_k'"),
    Case("knn temperature 0", new("eval.knn_temperature=0"), r"'eval.knn_temperature'"),
    Case("unknown logger", new("run.loggers=[foo]"), r"unknown logger 'foo' in run.loggers"),
    Case("unknown dataset", new("data.name=mnistt"), r"unknown dataset 'mnistt'.*mnist"),
    Case("explicit root without CIFAR", lambda p: new("data.name=cifar10", f"data.root={p['empty']}")(p),
         r"cifar-10-batches-py.*data.root|data.root.*cifar"),
    Case("image folder that does not exist", lambda p: new("data.name=image-folder",
                                                           f"data.root={p['base'] / 'nowhere'}")(p), r"nowhere"),
    Case("unreadable image", lambda p: new("data.name=image-folder", f"data.root={p['base'] / 'rgb-bad'}")(p),
         r"broken.png.*skip_bad"),
    Case("run.dir is a file", lambda p: ["train", *TINY, f"run.dir={p['base'] / 'not-a-run.txt'}"], r"not-a-run.txt",
         new_dir=False),
    Case("train into a finished run", lambda p: ["train", *TINY, f"run.dir={p['run']}"],
         r"already holds a run.*--resume", unchanged="run", new_dir=False),
    Case("config: a wrong type", lambda p: ["config", "data.limit=abc"], r"config key 'data.limit'", new_dir=False),
    Case("config: an unknown recipe", lambda p: ["config", "byol-cifar"], r"unknown recipe 'byol-cifar'",
         new_dir=False),
    Case("show-views: 0 samples", lambda p: ["show-views", *TINY, "--samples", "0"], r"--samples.*>= 1",
         new_dir=False),
    Case("show-views: an unknown recipe", lambda p: ["show-views", "nope"], r"unknown recipe 'nope'", new_dir=False),
]

RUN_FOLDER = [  # the run folder must stay byte-for-byte the same
    Case("resume: change the encoder", resume("model.encoder=resnet18"), r"'model.encoder' cannot change on --resume",
         unchanged="run"),
    Case("resume: change the data", resume("data.name=mnist"), r"'data.name' cannot change", unchanged="run"),
    Case("resume: change the seed", resume("seed=1"), r"'seed' cannot change", unchanged="run"),
    Case("resume: change a method key", resume("method.temperature=0.5"), r"'method.temperature' cannot change",
         unchanged="run"),
    Case("resume: change the views", resume("augment.num_views=4"), r"'augment.num_views' cannot change",
         unchanged="run"),
    Case("resume: a wrong type", resume("trainer.max_steps=abc"), r"'trainer.max_steps'", unchanged="run"),
    Case("resume: a negative lr", resume("optim.lr=-1"), r"'optim.lr'.*out of range", unchanged="run"),
    Case("resume: a typo in a key", resume("trainer.max_step=9"), r"trainer.max_step", unchanged="run"),
    Case("resume: checkpoint every 0", resume("trainer.ckpt_every_n_steps=0"), r"'trainer.ckpt_every_n_steps'",
         unchanged="run"),
    Case("resume: with a recipe", lambda p: ["train", "--resume", p["run"], "simclr-fashion-mnist"],
         r"drop 'simclr-fashion-mnist'", unchanged="run"),
    Case("resume: not a run folder", lambda p: ["train", "--resume", p["empty"]], r"config.yaml not found.*run folder",
         unchanged="empty"),
    Case("resume: a folder that does not exist", lambda p: ["train", "--resume", p["base"] / "gone"], r"gone"),
    Case("resume: a second writer", resume("trainer.max_steps=4"), r"in use by process \d+",
         unchanged="run", setup=live_lock, teardown=drop_lock),
    Case("resume: a corrupt checkpoint", resume("trainer.max_steps=4", run="corrupt_ckpt"),
         r"last.ckpt is corrupt", unchanged="corrupt_ckpt"),
    Case("eval: limit 1", on_run("eval", "eval.limit=1"), r"'eval.limit': 1 is out of range", unchanged="run"),
    Case("eval: limit 0", on_run("eval", "eval.limit=0"), r"'eval.limit'", unchanged="run"),
    Case("eval: limit abc", on_run("eval", "eval.limit=abc"), r"'eval.limit'", unchanged="run"),
    Case("eval: knn_k -1", on_run("eval", "eval.knn_k=-1"), r"'eval.knn_k'", unchanged="run"),
    Case("eval: batch size 0", on_run("eval", "eval.batch_size=0"), r"'eval.batch_size'", unchanged="run"),
    Case("eval: a typo in a key", on_run("eval", "eval.limt=100"), r"eval.limit", unchanged="run"),
    Case("eval: an unknown probe", on_run("eval", "--probe", "svm"), r"unknown probe 'svm'", unchanged="run"),
    Case("eval: label fraction 0", on_run("eval", "--label-fraction", "0"), r"label fractions must be in \(0, 1\]",
         unchanged="run"),
    Case("eval: label fraction abc", on_run("eval", "--label-fraction", "abc"), r"not a comma-separated list",
         unchanged="run"),
    Case("eval: a folder that does not exist", lambda p: ["eval", p["base"] / "gone"], r"gone.*config.yaml|not found"),
    Case("eval: not a run folder", lambda p: ["eval", p["empty"]], r"run folder", unchanged="empty"),
    Case("eval: config.yaml not YAML", on_run("eval", run="bad_yaml"), r"config.yaml is not valid YAML",
         unchanged="bad_yaml"),
    Case("eval: config.yaml a list", on_run("eval", run="list_yaml"), r"must hold a mapping", unchanged="list_yaml"),
    Case("eval: config.yaml with a python tag", on_run("eval", run="python_yaml"), r"config.yaml is not valid YAML",
         unchanged="python_yaml"),
    Case("eval: config.yaml with an unknown key", on_run("eval", run="unknown_key_yaml"), r"unknown config key 'colour'",
         unchanged="unknown_key_yaml"),
    Case("export: an unknown format", on_run("export", "--format", "pt", "--out", "{base}/x.pt"), r"invalid choice",
         unchanged="run"),
    Case("export: torchvision for a small convnet", on_run("export", "--format", "torchvision", "--out", "{base}/x.pth"),
         r"no torchvision equivalent", unchanged="run"),
    Case("export: weights that do not match the metadata", on_run("export", "--format", "safetensors", "--out",
                                                                  "{base}/x.safetensors", run="wrong_weights"),
         r"encoder.safetensors: the weights do not match the architecture", unchanged="wrong_weights"),
    Case("export: a tensor missing", on_run("export", "--format", "onnx", "--out", "{base}/x.onnx",
                                            run="missing_tensor"),
         r"encoder.safetensors: the weights do not match.*Missing key", unchanged="missing_tensor"),
    Case("export: no spec in the metadata", on_run("export", "--format", "onnx", "--out", "{base}/x.onnx",
                                                   run="no_spec"),
         r"encoder.safetensors's selfsup metadata is incomplete.*'spec'", unchanged="no_spec"),
    Case("export: a garbage encoder file", on_run("export", "--format", "safetensors", "--out", "{base}/y.safetensors",
                                                  run="garbage_encoder"),
         r"encoder.safetensors is not a selfsup encoder file", unchanged="garbage_encoder"),
    Case("export: no encoder yet", on_run("export", "--format", "safetensors", "--out", "{base}/z.safetensors",
                                          run="no_encoder"),
         r"encoder.safetensors not found", unchanged="no_encoder"),
    Case("embed: an unknown suffix", on_run("embed", "--out", "{base}/e.txt"), r"e.txt.*\.npy", unchanged="run"),
    Case("embed: an unknown dataset", on_run("embed", "--data", "nope", "--out", "{base}/e.npy"),
         r"unknown dataset 'nope'", unchanged="run"),
    Case("embed: colour data on a grey encoder", on_run("embed", "--data", "image-folder", "--root", "{base}/rgb",
                                                        "--out", "{base}/e.npy"),
         r"channel", unchanged="run"),
    Case("embed: batch size 0", on_run("embed", "data.batch_size=0", "--out", "{base}/e.npy"), r"'data.batch_size'",
         unchanged="run"),
    Case("embed: an unknown split", on_run("embed", "--split", "val", "--out", "{base}/e.npy"), r"invalid choice",
         unchanged="run"),
]
CASES = KEY_AND_RANGE + RUN_FOLDER


def test_the_table_has_the_cases_the_issue_counts():
    assert len(CASES) >= 65 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_mistake_is_one_named_line_and_changes_nothing(case, world, capsys):
    if case.skip():
        pytest.skip("needs a machine without a GPU")
    if case.setup:
        case.setup(world)
    try:
        before = snapshot(world[case.unchanged]) if case.unchanged else None
        rc, _, err = call(case.argv(world), capsys)
        if before is not None:
            assert snapshot(world[case.unchanged]) == before, f"{case.unchanged} changed"
    finally:
        if case.teardown:
            case.teardown(world)
    assert rc == case.rc, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if re.match(r"(selfsup|usage)\b.*error: ", line)]
    assert len(errors) == 1, err
    assert re.search(case.message, errors[0]), errors[0]
    if case.new_dir:
        assert not (world["base"] / "new").exists(), "a failed start left a run folder"


def test_one_global_crop_and_local_crops_train(world, capsys):
    rc, _, err = call(new_method("dino", "augment.num_global_crops=1", "augment.num_local_crops=2", "method.out_dim=64",
                                 "method.hidden_dim=32", "method.bottleneck_dim=16", "eval.after_train=false",
                                 folder="dino-one-global")(world), capsys)
    assert rc == 0, err
    assert (world["base"] / "dino-one-global" / "encoder.safetensors").exists()


def test_more_views_than_used_warn_for_an_existing_run(world, caplog):
    """An existing run folder's config (eval, resume) with more views than its method uses is
    a warning, not a refusal: the run was made and must stay usable."""
    run = world["base"] / "three-views"
    run.mkdir()
    (run / "config.yaml").write_text((world["run"] / "config.yaml").read_text().replace("num_views: 2",
                                                                                         "num_views: 3"))
    with caplog.at_level("WARNING", logger="selfsup"):
        assert run_config(run).augment.num_views == 3
    assert re.search(r"'augment.num_views': 3 is more than method.name=simclr uses.*a new run should set "
                     r"augment.num_views=2", caplog.text), caplog.text


def test_a_one_class_folder_is_one_clear_line_or_a_result(world, capsys):
    rc, _, err = call(["train", *TINY, "trainer.max_steps=1", "data.name=image-folder", "data.batch_size=2",
                       f"data.root={world['base'] / 'one-class'}", f"run.dir={world['base'] / 'one-class-run'}"],
                      capsys)
    assert "Traceback" not in err and "scikit" not in err.lower(), err
    if rc != 0:
        assert rc == 2 and len([line for line in err.splitlines() if "error:" in line]) == 1, err


# -- disk full and permissions: one line naming the path -----------------------------------------
@pytest.mark.parametrize("code, text", [(errno.ENOSPC, r"No space left on device \(writing it needs [\d.]+ MB free\)"
                                                       r"; free space"),
                                        (errno.EDQUOT, r"quota")])
def test_disk_full_while_checkpointing_is_one_line_with_the_size(code, text, world, capsys, monkeypatch):
    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(code, os.strerror(code))

    real_fdopen = os.fdopen
    monkeypatch.setattr(checkpoint_module.os, "fdopen",  # os.fdopen(fd, "wb") is the checkpoint's temp file
                        lambda fd, mode, *a: Full(real_fdopen(fd, mode)) if mode == "wb" else real_fdopen(fd, mode, *a))
    run_dir = world["base"] / "full"
    rc, _, err = call(["train", *TINY, "trainer.max_steps=2", f"run.dir={run_dir}"], capsys)
    assert rc == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert re.search(rf"selfsup: error: \S*last.ckpt: .*{text}", line), line
    assert not run_dir.exists()  # the failed start (no checkpoint written) left nothing


@pytest.mark.parametrize("code, text", [(errno.EACCES, r"Permission denied; fix the folder's permissions"),
                                        (errno.EROFS, r"Read-only file system; .*read-only")])
def test_a_folder_that_cannot_be_written_is_one_line(code, text, world, capsys, monkeypatch, tmp_path):
    def refuse(source, target, *args, **kwargs):  # what the OS says for the temp file beside --out
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(shutil, "copyfile", refuse)
    rc, _, err = call(["export", world["run"], "--format", "safetensors", "--out", tmp_path / "out.safetensors"],
                      capsys)
    assert rc == 2 and "Traceback" not in err, err
    assert re.search(rf"selfsup: error: {re.escape(str(tmp_path))}/\.out.safetensors.tmp: {text}", err), err


def test_verbose_shows_the_traceback_of_a_disk_error(world, capsys, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", "x")

    monkeypatch.setattr(shutil, "copyfile", refuse)
    monkeypatch.delenv("SELFSUP_VERBOSE", raising=False)
    with pytest.raises(OSError):
        cli.main(["--verbose", "export", str(world["run"]), "--format", "safetensors", "--out",
                  str(tmp_path / "o.safetensors")])
    os.environ.pop("SELFSUP_VERBOSE", None)


# -- a checkpoint writer that fails mid-run, then --resume ----------------------------------------
def test_a_checkpoint_write_failing_mid_run_then_resume_ends_like_an_uninterrupted_run(tmp_path, capsys,
                                                                                      monkeypatch):
    args = [*TINY, "trainer.max_steps=4", "trainer.max_epochs=-1", "trainer.ckpt_every_n_steps=1"]
    assert call(["train", *args, f"run.dir={tmp_path / 'twin'}"], capsys)[0] == 0

    real_save, calls = torch.save, {"n": 0}

    def save_then_fill_the_disk(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_then_fill_the_disk)
    run_dir = tmp_path / "failed"
    rc, _, err = call(["train", *args, f"run.dir={run_dir}"], capsys)
    monkeypatch.undo()
    assert rc == 2 and "No space left on device" in err and "Traceback" not in err, err
    assert json.loads((run_dir / "checkpoints" / "last.json").read_text())["global_step"] == 1
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / ".lock").exists()

    assert call(["train", "--resume", run_dir], capsys)[0] == 0
    got, want = (json.loads((d / "eval.json").read_text()) for d in (run_dir, tmp_path / "twin"))
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-4), key


# -- Hypothesis: the config parser ----------------------------------------------------------------
KNOWN_KEYS = ["seed", "recipe", "data.name", "data.limit", "data.batch_size", "data.val_fraction",
              "data.labelled_fraction", "data.image_size", "data.freq_range", "model.encoder", "model.width",
              "augment.crop_scale", "augment.view_blur_prob", "augment.hflip_prob", "optim.lr", "optim.betas",
              "optim.lr_scales", "method.name", "method.temperature", "trainer.max_epochs", "trainer.devices",
              "trainer.precision", "trainer.ckpt_every_n_steps", "eval.limit", "eval.knn_k", "run.loggers", "run.dir"]
VALUES = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=8),
    st.sampled_from(["[1,2]", "[]", "null", "true", "${x}", "${", "[", "{a: 1}", "[0.5]", "[0.9,0.1]", "'quoted'",
                     "-", "1e400", "simclr", "byol", "cpu", "gpu"]),
)
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8}){0,2}", fullmatch=True))


@settings(max_examples=50, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_random_overrides_are_a_config_or_an_error_naming_a_key(pairs):
    try:
        compose_config(None, [f"{k}={v}" for k, v in pairs])
    except ValueError as err:
        assert any(k.split(".")[0] in str(err) for k, _ in pairs), str(err)


# -- Hypothesis: the dataset readers, given random bytes -------------------------------------------
def read_as(kind: str, data: bytes, folder: Path) -> Path:
    from selfsup.data.idx import read_idx
    from selfsup.data.build import build_data
    from selfsup.data.images import read_cifar_batch
    from selfsup.data.user_signals import read_signals

    if kind == "idx":
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(data)
        read_idx(path)
    elif kind == "cifar":
        path = folder / "data_batch_1"
        path.write_bytes(data)
        read_cifar_batch(path, b"labels")
    elif kind == "npy":
        path = folder / "signals.npy"
        path.write_bytes(data)
        read_signals(path)
    else:
        path = folder / "images" / "b" / "random.png"
        if not path.parent.exists():
            for label in ("a", "b"):
                png(folder / "images" / label / "fine.png")
        path.write_bytes(data)
        build_data(DataConfig(name="image-folder", root=str(folder / "images")), 0)
    return path


PREFIXES = {"idx": b"\x00\x00\x08\x03", "cifar": b"\x80\x02", "npy": b"\x93NUMPY\x01\x00", "png": b"\x89PNG\r\n\x1a\n"}


@settings(max_examples=50, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(PREFIXES)), st.booleans(), st.binary(max_size=64))
def test_random_bytes_in_a_dataset_file_are_an_error_naming_the_file(tmp_path, kind, with_magic, data):
    folder = tmp_path / kind
    folder.mkdir(exist_ok=True)
    name = {"idx": "train-images-idx3-ubyte", "cifar": "data_batch_1", "npy": "signals.npy", "png": "random.png"}[kind]
    try:
        read_as(kind, (PREFIXES[kind] if with_magic else b"") + data, folder)
    except ValueError as err:
        assert name in str(err), str(err)
