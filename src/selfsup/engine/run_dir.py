"""The run folder: config.yaml, checkpoints/, metrics.csv, encoder.safetensors, eval.json,
report.md, plots/."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from selfsup.engine.checkpoint import LAST

RUN_DIR_ENV = "SELFSUP_RUN_DIR"  # hands rank 0's run folder to the processes Lightning launches


def new_run_dir(cfg: DictConfig) -> Path:
    """``run.dir`` if set; in a process launched by DDP, the folder rank 0 chose; else
    ``./runs/<recipe>-<timestamp>``."""
    if cfg.run.dir:
        return Path(cfg.run.dir)
    if os.environ.get(RUN_DIR_ENV) and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(os.environ[RUN_DIR_ENV])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{cfg.recipe}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path("runs") / f"{cfg.recipe}-{stamp}-{suffix}"
    return path


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / LAST


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / ".config.yaml.tmp"
    tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    os.replace(tmp, run_dir / "config.yaml")


def write_json(path: Path, values: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def training_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / "encoder.safetensors").exists()
