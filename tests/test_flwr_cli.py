"""Flower's own CLI works inside yinqi's environment (issue 9).

amqtt 0.11 pinned typer 0.15.4, with which `flwr ls --help` died on a `typing.Literal` option;
typer 0.16-0.18 fail the same way. pyproject.toml now asks for typer>=0.19,<0.21 (flwr 1.42
needs <0.21). An operator must be able to run `flwr ls`, `flwr log`, `flwr run` beside yinqi.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FLWR = Path(sys.executable).parent / "flwr"


@pytest.mark.parametrize("args", [["--help"], ["ls", "--help"], ["log", "--help"], ["run", "--help"]])
def test_flwr_cli_answers_help(args: list[str]) -> None:
    assert FLWR.exists(), f"{FLWR} is not installed next to this Python"
    result = subprocess.run([str(FLWR), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout
