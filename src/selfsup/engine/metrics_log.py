"""metrics.csv that survives a resume: earlier rows are kept, rows past the checkpoint dropped."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; this one continues it."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])


class RunMetricsLogger(CSVLogger):
    """``RUN_DIR/metrics.csv``. With ``resume_step``, rows logged at or after that step (work
    that was lost with the process and will be redone) are removed before training goes on."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        super().__init__(str(run_dir), name="", version="")
        if resume_step is not None and rank_zero_only.rank == 0:
            truncate_metrics(Path(run_dir) / "metrics.csv", resume_step)

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment


def truncate_metrics(path: Path, before_step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], [r for r in reader if int(float(r.get("step") or 0)) < before_step]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
