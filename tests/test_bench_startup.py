"""bench/startup.py's terminal sees what Cockpit draws: its first-paint probe matches the
dashboard of a real `cockpit` in a pty, its key walk is the 50 keys it says, and the first keys
of the walk are answered. (A probe that no longer matches makes the benchmark print nothing.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def startup():
    spec = importlib.util.spec_from_file_location("bench_startup", ROOT / "bench" / "startup.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_terminal_sees_the_first_paint_and_the_first_keys_answered(startup, tmp_path):
    (tmp_path / "cockpit").mkdir()
    term = startup.Terminal(startup.DEMO, str(tmp_path))
    try:
        assert term.wait(startup.painted, 60) is not None, term.text()
        steps = startup.walk(2060)
        assert len(steps) == 50
        for step in steps[:7]:  # `:hosts` typed and Enter: the hosts view with every host
            took = term.wait(step.done, 10, step.keys)
            assert took is not None and took > 0, f"{step.name}:\n{term.text()}"
    finally:
        code = term.close()
    assert code == 0  # a hang-up ends it cleanly
