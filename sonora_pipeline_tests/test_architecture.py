"""The layer contract and the lint rules of pyproject.toml, checked by the tools that define them
(`lint-imports`, `ruff check`), so a back-edge or a lint error fails the suite with the tool's own report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: the tools pinned in pyproject's dev extra


@pytest.mark.parametrize("command", [["lint-imports"], ["ruff", "check", "--no-cache", "."]],
                         ids=["import-linter", "ruff"])
def test_the_tool_passes(command):
    tool = BIN / command[0]
    assert tool.exists(), f"{tool} is missing: install the dev extra (pip install -e '.[dev]')"
    # The worktree first on the path, so lint-imports reads this checkout's package, not an installed copy.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([str(tool), *command[1:]], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
