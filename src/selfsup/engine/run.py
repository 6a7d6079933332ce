"""A run: its folder, its resolved config, and the files in it.

``RUN_DIR`` (``run.dir``, default ``./runs/<recipe>-<timestamp>``) holds ``config.yaml`` (fully
resolved, with ``run.history``), ``checkpoints/last.ckpt`` (+ ``last.json``, the step it holds),
``training.json`` (how long and how it trained), ``metrics.csv``, ``encoder.safetensors``,
``eval.json`` (+ ``eval_protocol.json``), ``report.md``, ``plots/`` and, while a process writes
into it, ``.lock``. :class:`Run` is what ``train``, ``resume``, evaluation, export and the CLI
pass around: the config is read and validated once per command, the data built once.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from selfsup.config.loading import ConfigError
from selfsup.data import DataSplits, build_data
from selfsup.engine.checkpoint import atomic_write_text
from selfsup.engine.configure import run_config

RUN_DIR_ENV = "SELFSUP_RUN_DIR"  # hands rank 0's run folder to the processes Lightning launches


def process_rank() -> int:
    """This process's global rank as the launcher (Lightning, torchrun, SLURM) sets it."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def launched_processes() -> int:
    """How many processes an external launcher (torchrun, SLURM's srun) started; 1 without one."""
    for key in ("WORLD_SIZE", "SLURM_NTASKS"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


def launcher_job_id() -> Optional[str]:
    """The id every process of one launch shares: SLURM's job (and step), torchrun's rendezvous."""
    if os.environ.get("SLURM_JOB_ID"):
        return "slurm" + os.environ["SLURM_JOB_ID"] + (f".{os.environ['SLURM_STEP_ID']}"
                                                       if os.environ.get("SLURM_STEP_ID") else "")
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    return None if run_id == "none" else f"torchrun-{run_id}"


def write_json(path: Path, values: dict) -> None:
    """Atomically (temp file + rename) write ``values`` as indented, sorted JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it or restore it from a copy") from None


class RunLocked(FileExistsError):
    """Another live process writes into this run folder."""


@dataclass
class Run:
    """A run folder and its resolved config (see the module docstring)."""

    dir: Path
    cfg: DictConfig
    _splits: Optional[DataSplits] = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path | "Run", overrides: Sequence[str] = ()) -> "Run":
        """An existing run folder; ``overrides`` (e.g. eval.limit=1000) apply to this command only."""
        if isinstance(path, Run) and not overrides:
            return path
        path = Path(path)
        return cls(path, run_config(path, overrides))

    # -- paths ------------------------------------------------------------------------------
    def __fspath__(self) -> str:
        return str(self.dir)

    def __truediv__(self, name: str) -> Path:
        return self.dir / name

    def __str__(self) -> str:
        return str(self.dir)

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoints" / "last.ckpt"

    @property
    def checkpoint_info_path(self) -> Path:
        return self.dir / "checkpoints" / "last.json"

    @property
    def encoder_path(self) -> Path:
        return self.dir / "encoder.safetensors"

    @property
    def training_path(self) -> Path:
        return self.dir / "training.json"

    @property
    def eval_path(self) -> Path:
        return self.dir / "eval.json"

    @property
    def lock_path(self) -> Path:
        return self.dir / ".lock"

    # -- state ------------------------------------------------------------------------------
    def checkpoint_step(self) -> Optional[int]:
        """The optimiser step the last checkpoint holds (from its small side file), or None."""
        info = read_json(self.checkpoint_info_path)
        return int(info["global_step"]) if "global_step" in info and self.checkpoint_path.exists() else None

    def training(self) -> dict:
        """training.json: epochs, steps, batch, precision, device, wall time, finished."""
        return read_json(self.training_path)

    @property
    def finished(self) -> bool:
        return bool(self.training().get("finished")) and self.encoder_path.exists()

    def splits(self) -> DataSplits:
        """The run's data, built once (seeded by the run's seed)."""
        if self._splits is None:
            self._splits = build_data(self.cfg.data, int(self.cfg.seed))
        return self._splits

    def save_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, OmegaConf.to_yaml(self.cfg, resolve=True))

    # -- one writer at a time ----------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, new: bool = False) -> Iterator["Run"]:
        """Hold the run folder's lock (pid, host, start time) while writing into it; refuse when
        another live process holds it, take a dead process's lock over, remove the temp files
        of interrupted writes. With ``new``, a failure before the first checkpoint removes the
        folder again (a failed start leaves nothing behind). Processes other than rank 0 write
        nothing and take no lock."""
        if process_rank() != 0:
            yield self
            return
        created = new and not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        owned = self._acquire_lock()
        try:
            remove_interrupted_writes(self.dir)
            yield self
        except BaseException:
            if created and not self.checkpoint_path.exists():
                shutil.rmtree(self.dir, ignore_errors=True)
            raise
        finally:
            if owned:
                self.lock_path.unlink(missing_ok=True)

    def _acquire_lock(self) -> bool:
        """True when this call took the lock; False when this process already holds it."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = read_lock(self.lock_path)
                if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                    return False
                if lock_is_live(holder):
                    raise RunLocked(
                        f"{self.dir} is in use by process {holder.get('pid')} on {holder.get('host')} (since "
                        f"{holder.get('started')}): wait for it to finish, or choose another run.dir") from None
                self.lock_path.unlink(missing_ok=True)  # a dead process's lock: take it over
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return True
        raise RunLocked(f"could not take the lock {self.lock_path}; delete it if no selfsup process uses {self.dir}")


def read_lock(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def lock_is_live(holder: dict) -> bool:
    """A lock is live when its process still runs on this host (another host's lock is trusted)."""
    if holder.get("host") != socket.gethostname():
        return bool(holder)
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def remove_interrupted_writes(folder: Path) -> None:
    """Temp files (``.<name>.*.tmp``) that an interrupted atomic write left behind."""
    for pattern in (".*.tmp", "checkpoints/.*.tmp"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def new_run_dir(cfg: DictConfig) -> Path:
    """``run.dir`` if set; in a process launched by DDP, the folder rank 0 chose; else
    ``./runs/<recipe>-<timestamp>``."""
    if cfg.run.dir:
        return Path(cfg.run.dir)
    if os.environ.get(RUN_DIR_ENV) and process_rank() != 0:
        return Path(os.environ[RUN_DIR_ENV])
    if launched_processes() > 1:  # torchrun / srun started every process: they agree on the launcher's job id
        job = launcher_job_id()
        if job is None:
            raise ConfigError("several processes were launched (WORLD_SIZE / SLURM_NTASKS > 1) without a job id "
                              "they share: set run.dir=... so that every process writes into the same run")
        return Path("runs") / f"{cfg.recipe}-{job}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{cfg.recipe}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path("runs") / f"{cfg.recipe}-{stamp}-{suffix}"
    return path
