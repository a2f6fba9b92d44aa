"""ruff and mypy run as part of the test suite, so CI (`make test`) enforces them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("cmd", [["ruff", "check", "src", "stages", "tests", "bench"], ["mypy"]])
def test_linters_pass(cmd: list[str]) -> None:
    exe = BIN / cmd[0] if (BIN / cmd[0]).exists() else shutil.which(cmd[0])
    if exe is None:
        pytest.skip(f"{cmd[0]} is not installed (it comes with the `dev` extra)")
    proc = subprocess.run([str(exe), *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
