"""Imports point one way: cli -> engine -> methods -> eval -> models -> losses / augment -> data
-> core -> config. Every ``from selfsup.X`` / ``import selfsup.X`` in a module of a layer (lazy
imports inside functions included) names the same layer or one below it."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "selfsup"
FLOOR = {"cli": 9, "engine": 8, "methods": 7, "eval": 6, "models": 5, "losses": 4, "augment": 4, "data": 3,
         "core": 2, "config": 1}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "selfsup" and parts[1] in FLOOR else None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return out


def violations(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        own = layer_of(".".join(rel.with_suffix("").parts))
        if own is None:
            continue
        for line, module in imported_modules(path):
            target = layer_of(module)
            if target is not None and target != own and FLOOR[target] >= FLOOR[own]:
                found.append(f"{rel}:{line} ({own}) imports {module} ({target})")
    return found


def test_every_import_points_down():
    assert violations(ROOT) == []


def test_the_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "selfsup" / "data"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text("def f():\n    from selfsup.models.encoders import Encoder\n")
    (bad / "y.py").write_text("from selfsup.core.registry import Registry\n")
    assert violations(tmp_path / "selfsup") == ["selfsup/data/x.py:2 (data) imports selfsup.models.encoders (models)"]


@pytest.mark.parametrize("package", ["selfsup.methods", "selfsup.models", "selfsup.losses", "selfsup.data"])
def test_importing_a_layer_loads_no_plotting_or_sklearn(package):
    import subprocess
    import sys

    code = (f"import sys, {package}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'sklearn', 'lightning'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"import {package} loaded {out}"
