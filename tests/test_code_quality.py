"""The code stays ruff-clean, ruff-formatted and mypy-clean (CI runs only pytest)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from store.settings import PROJECT_ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "--quiet", "."],
        ["ruff", "format", "--check", "--quiet", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


#: Layers run one way (loaders → store → geo → dashboard): what each package may import of
#: the others. The store is the base; the loaders write through it and never reach the
#: analytics; geo reads through it; the dashboard shows what geo and the store return.
ALLOWED = {
    "store": set(),
    "loaders": {"store"},
    "geo": {"store"},
    "dashboard": {"store", "geo"},
}


def _imported_packages(path) -> set[str]:
    """Top-level names a module imports anywhere (also inside functions), and the ones it
    names to ``importlib.import_module``/``__import__`` as a string literal."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


def layer_violations(root=PROJECT_ROOT) -> list[str]:
    """``file: imports X`` for every module that imports a package its layer may not."""
    out = []
    for layer, allowed in ALLOWED.items():
        others = set(ALLOWED) - allowed - {layer}
        for path in sorted((root / layer).rglob("*.py")):
            bad = _imported_packages(path) & others
            out += [f"{path.relative_to(root).as_posix()}: imports {b}" for b in sorted(bad)]
    return sorted(out)


def test_layers_import_one_way() -> None:
    assert layer_violations() == []


def test_layer_check_catches_a_loader_importing_geo(tmp_path) -> None:
    """The check fails on the very thing it guards against: a loader module importing
    geo, at module level or inside a function, or by name through importlib."""
    for layer in ALLOWED:
        (tmp_path / layer).mkdir()
    (tmp_path / "loaders" / "ok.py").write_text("from store import db\nimport pandas\n")
    (tmp_path / "loaders" / "hook.py").write_text("def f():\n    from geo import coverage_store\n")
    (tmp_path / "loaders" / "sly.py").write_text(
        "import importlib\nm = importlib.import_module('geo.coverage_store')\n"
    )
    (tmp_path / "geo" / "fine.py").write_text("import store.db\n")
    (tmp_path / "store" / "up.py").write_text("import dashboard.data\n")
    assert layer_violations(tmp_path) == [
        "loaders/hook.py: imports geo",
        "loaders/sly.py: imports geo",
        "store/up.py: imports dashboard",
    ]
