"""One row per finished ContextSSL run on RotColor-MNIST: what each lever (schedule, steps and
learning rate, a frozen pre-trained encoder, the state standardisation, a stronger encoder) does
to the encoder's rotation, to the context's effect and to the use of the actions.

    python bench/contextssl_levers.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--out table.md]

Each RUN_DIR is a run folder evaluated with the contextssl evaluation (e.g. one that
bench/contextssl_experiment.py wrote). Columns: optimiser steps and training seconds (from
training.json), the encoder's rotation R² (``features.r2_rot``), rotation R² after a context of
0 and of the largest length under the rot / color environments (a context that chooses the
symmetry makes these differ), colour R² at the largest length, the MRR of a rotation and of a
colour query at the largest length, and the output change under an environment swap against a
pair swap there.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ["run", "steps", "train s", "encoder rot R²", "rot R² c = 0", "rot R² c = L, rot / color ctx",
           "colour R² c = L, rot / color ctx", "MRR c = L, rot query / colour query", "env swap / pair swap c = L"]


def row(label: str, run: Path) -> str:
    results = json.loads((run / "eval.json").read_text())
    training = json.loads((run / "training.json").read_text())
    largest = max(int(k.split(".")[0][3:]) for k in results if k.startswith("ctx"))
    c = f"ctx{largest}"

    def pair(a: str, b: str) -> str:
        return f"{results[a]:.3f} / {results[b]:.3f}"

    cells = [f"{label} (L = {largest})", str(training["steps"]), f"{training['wall_time_s']:.0f}",
             f"{results['features.r2_rot']:.3f}", f"{results['ctx0.rot.r2_rot']:.3f}",
             pair(f"{c}.rot.r2_rot", f"{c}.color.r2_rot"), pair(f"{c}.rot.r2_color", f"{c}.color.r2_color"),
             pair(f"{c}.rot.mrr_query_rot", f"{c}.rot.mrr_query_color"),
             pair(f"sensitivity.{c}.env_swap", f"sensitivity.{c}.pair_swap")]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for item in args.runs:
        label, _, folder = item.partition("=")
        lines.append(row(label, Path(folder)))
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
