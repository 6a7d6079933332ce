"""Reading a finished run in tests: metrics.csv rows and columns, the recipes the CLI lists."""
import csv

from selfsup.cli import main


def metrics(run_dir) -> list[dict]:
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def column(rows, name) -> list[float]:
    return [float(r[name]) for r in rows if r.get(name)]


def listed_recipes(capsys) -> set[str]:
    assert main(["recipes"]) == 0
    return {line.split("\t")[0] for line in capsys.readouterr().out.splitlines()}
