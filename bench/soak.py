"""Soak: short runs back to back, each killed (SIGKILL or SIGINT) at a random moment with
mid-epoch checkpoints on, resumed until it finishes, and its eval.json compared with an
uninterrupted twin of the same config (issue 15, part 6).

    python bench/soak.py --runs 200 [--jobs J] [--minutes M] [--seed S] [--out bench/reports/soak/README.md]

Counts runs, kills (by signal), resumes, fresh restarts (a kill before the run folder held a
config), mismatches (an eval.json key off its twin's by more than --tol), leaked temp files
(``*.tmp`` or a ``.lock`` left in a finished run folder) and the peak memory of one selfsup
process; writes a markdown summary, rewritten after every run, so a soak cut short still
reports what it did. ``--minutes`` stops starting new runs after that long; ``--jobs`` runs that
many soaks side by side (each run has its own random stream, seeded by ``--seed`` and its index).
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BASE = ["data.name=digits", "data.batch_size=32", "data.limit=300", "model.width=8", "method.proj_hidden_dim=32",
        "method.proj_dim=16", "optim.lr=0.1", "trainer.enable_progress_bar=false", "eval.map_points=0",
        "eval.baselines=false", "eval.online_knn_samples=0"]
CONFIGS = {  # one uninterrupted twin each
    "ckpt1-8steps": ["trainer.ckpt_every_n_steps=1", "trainer.max_steps=8", "trainer.max_epochs=-1"],
    "ckpt2-2epochs": ["trainer.ckpt_every_n_steps=2", "trainer.max_epochs=2"],
}
MAX_ATTEMPTS = 6  # the last attempt of a run is never killed


def selfsup(args: list[str]) -> subprocess.Popen:
    # SIGINT back to its default in the child: a soak started in the background (`... &`) has it
    # ignored, and an ignored SIGINT is inherited, so Ctrl-C would never reach the run
    return subprocess.Popen([sys.executable, "-m", "selfsup", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def eval_json(run_dir: Path) -> dict | None:
    path = run_dir / "eval.json"
    return json.loads(path.read_text()) if path.exists() else None


def wait_for_work(proc: subprocess.Popen, run_dir: Path) -> float:
    """Block until the process holds the run folder's lock (its imports are done and it works on
    the run) or exits; returns when that was (perf_counter)."""
    while proc.poll() is None and not (run_dir / ".lock").exists():
        time.sleep(0.05)
    return time.perf_counter()


def run_twin(name: str, work: Path) -> tuple[dict, float]:
    """The uninterrupted run's eval.json and how long it worked on its folder (train + eval)."""
    run_dir = work / f"twin-{name}"
    proc = selfsup(["train", *BASE, *CONFIGS[name], f"run.dir={run_dir}"])
    start = wait_for_work(proc, run_dir)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"twin {name} failed:\n{err}")
    return eval_json(run_dir), time.perf_counter() - start


def mismatch(got: dict | None, want: dict, tol: float) -> float | None:
    """The largest difference of a shared numeric key; None when keys differ or eval.json is missing."""
    if got is None or set(got) != set(want):
        return None
    return max((abs(float(got[k]) - float(want[k])) for k in want if isinstance(want[k], (int, float))), default=0.0)


def soak_one(run_dir: Path, name: str, duration: float, rng: random.Random, stats: dict) -> dict:
    """Train with kills until the run finishes; returns its eval.json."""
    for attempt in range(MAX_ATTEMPTS):
        fresh = not (run_dir / "config.yaml").exists()
        args = ["train", *BASE, *CONFIGS[name], f"run.dir={run_dir}"] if fresh else ["train", "--resume", str(run_dir)]
        if fresh and run_dir.exists():
            shutil.rmtree(run_dir)  # killed before its config was written: nothing to resume
        stats["restarts" if fresh and attempt else "resumes" if not fresh else "starts"] += 1
        proc = selfsup(args)
        kill = attempt == 0 or (attempt < MAX_ATTEMPTS - 1 and rng.random() < 0.3)
        sig = None
        if kill:
            wait_for_work(proc, run_dir)
            try:
                proc.wait(timeout=rng.uniform(0.0, 1.0) * duration)
            except subprocess.TimeoutExpired:
                sig = rng.choice([signal.SIGKILL, signal.SIGINT])
                proc.send_signal(sig)
        _, err = proc.communicate()
        if sig is not None and proc.returncode != 0:  # a signal that landed (not one during the interpreter's exit)
            stats["kills"][sig.name] += 1
        if proc.returncode == 0 and eval_json(run_dir) is not None:
            return eval_json(run_dir)
        stats["last_error"] = err.strip().splitlines()[-1:]
        if proc.returncode not in (0, 1, 2, -signal.SIGKILL, -signal.SIGINT, 130):
            stats["errors"].append(f"{run_dir.name}: exit {proc.returncode}: {err.strip().splitlines()[-1:]}")
        elif proc.returncode == 2:  # a selfsup error line: not something a kill should cause
            stats["errors"].append(f"{run_dir.name}: {err.strip().splitlines()[-1:]}")
    return eval_json(run_dir)


def report(stats: dict, args, elapsed: float) -> str:
    lines = [
        "# Soak: killed and resumed runs end like their uninterrupted twins",
        "",
        f"`python bench/soak.py --runs {args.runs} --jobs {args.jobs} --minutes {args.minutes} --seed {args.seed}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed / 60:.1f} min on a shared 2-core CPU).",
        "Each run: digits, 300 samples, convnet-small width 8, SimCLR; mid-epoch checkpoints on; its first "
        "process is killed with SIGKILL or SIGINT at a uniform random moment of the time its twin worked on the "
        "run folder (from taking the lock to its exit; imports excluded), "
        "(later resumes with probability 0.3, never the last), then `selfsup train --resume` until it finishes "
        "(train + eval).",
        "",
        "| configs | " + " | ".join(f"`{n}`: {' '.join(CONFIGS[n])}" for n in CONFIGS) + " |",
        "|---|" + "---|" * len(CONFIGS),
        "",
        "| runs | SIGKILL | SIGINT | resumes | fresh restarts | mismatches | max abs diff | leaked temp files | errors | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {stats['runs']} | {stats['kills']['SIGKILL']} | {stats['kills']['SIGINT']} | {stats['resumes']} | "
        f"{stats['restarts']} | {stats['mismatches']} | {stats['max_diff']:.2e} | {stats['leaked']} | "
        f"{len(stats['errors'])} | {stats['peak_rss_mb']:.0f} MB |",
        "",
        f"A mismatch: an eval.json key missing or off the twin's by more than {args.tol}. Leaked: a `*.tmp` file or "
        "a `.lock` left in a finished run folder. Peak RSS: the largest selfsup process (getrusage of children). "
        "Fresh restarts: a kill before config.yaml existed (the failed start left no folder), so the run started "
        "again.",
    ]
    if stats["errors"]:
        lines += ["", "Errors:", "", *[f"- {e}" for e in stats["errors"][:20]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--minutes", type=float, default=float("inf"), help="start no new run after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="soaks side by side")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--out", default=str(Path(__file__).parent / "reports" / "soak" / "README.md"))
    args = p.parse_args(argv)
    stats = new_stats()
    start = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def write_report() -> None:
        stats["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out.write_text(report(stats, args, time.perf_counter() - start))

    with tempfile.TemporaryDirectory(prefix="selfsup-soak-") as tmp:
        work = Path(tmp)
        twins = {name: run_twin(name, work) for name in CONFIGS}

        def one(i: int) -> None:
            if (time.perf_counter() - start) / 60 > args.minutes:
                return
            rng = random.Random(f"{args.seed}-{i}")
            name = rng.choice(list(CONFIGS))
            run_dir = work / f"run-{i:03d}-{name}"
            run_stats = new_stats()
            got = soak_one(run_dir, name, twins[name][1], rng, run_stats)
            diff = mismatch(got, twins[name][0], args.tol)
            with lock:
                merge_stats(stats, run_stats)
                stats["runs"] += 1
                if diff is None or diff > args.tol:
                    stats["mismatches"] += 1
                stats["max_diff"] = max(stats["max_diff"], diff or 0.0)
                stats["leaked"] += len(list(run_dir.rglob("*.tmp"))) + (run_dir / ".lock").exists()
                print(f"run {i}: {name} diff={diff} kills={stats['kills']} resumes={stats['resumes']} "
                      f"restarts={stats['restarts']} last error={run_stats.get('last_error')}", flush=True)
                write_report()
            shutil.rmtree(run_dir, ignore_errors=True)

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(one, range(args.runs)))
    write_report()
    print(out.read_text())
    return 0 if stats["mismatches"] == 0 and not stats["errors"] and not stats["leaked"] else 1


def new_stats() -> dict:
    return {"runs": 0, "kills": {"SIGKILL": 0, "SIGINT": 0}, "starts": 0, "resumes": 0, "restarts": 0,
            "mismatches": 0, "max_diff": 0.0, "leaked": 0, "errors": []}


def merge_stats(total: dict, run: dict) -> None:
    """Adds one run's kill / start / resume counts and errors to the soak's."""
    for key in ("starts", "resumes", "restarts"):
        total[key] += run[key]
    for sig, count in run["kills"].items():
        total["kills"][sig] += count
    total["errors"] += run["errors"]

if __name__ == "__main__":
    sys.exit(main())
