"""dashboard/warm.py: the import thread started while the login form shows names modules
that exist (a renamed one would be skipped silently), and importing them draws nothing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from dashboard import warm

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_to_warm_exists() -> None:
    missing = [name for name in warm.MODULES if importlib.util.find_spec(name) is None]
    assert missing == []


def test_the_thread_imports_them_all_in_a_fresh_process() -> None:
    script = (
        "import sys; from dashboard import warm\n"
        "before = {m for m in warm.MODULES if m in sys.modules}\n"
        "t = warm.start(); t.join(300)\n"
        "print(sorted(before)); print(sorted(m for m in warm.MODULES if m not in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    before, left = out.stdout.strip().splitlines()[-2:]
    assert left == "[]"  # all imported by the thread
    assert before != str(sorted(warm.MODULES))  # and some were not imported before it ran
