"""`yinqi psi` / `yinqi vertical`: a user's mistake is one line and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

YINQI = str(Path(sys.executable).parent / "yinqi")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [YINQI, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "YINQI_DATA_DIR": str(cwd / ".yinqi")},
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    done = run(
        "vertical",
        "synth",
        "--out",
        str(root / "d"),
        "--bank-merchants",
        "50",
        "--platform-merchants",
        "50",
        "--json",
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "vertical",
                "train",
                "--bank-data",
                "d/bank.csv",
                "--session",
                "feedfacefeedface",
                "--platform-data",
                "d/platform.csv",
                "--bank-db",
                "sqlite:///b.db",
            ],
            "PSI session 'feedfacefeedface' is not stored at this bank",
        ),
        (
            ["psi", "run", "--bank", "127.0.0.1:1", "--data", "d/missing.csv", "--insecure"],
            "d/missing.csv: file not found",
        ),
        (
            ["psi", "run", "--bank", "127.0.0.1:1", "--data", "d/platform.csv"],
            "give --ca, --cert and --key (mutual TLS), or --insecure",
        ),
        (
            ["psi", "run", "--bank", "127.0.0.1:1", "--data", "d/platform.csv", "--insecure", "--ca", "x.crt"],
            "--insecure and --ca/--cert/--key exclude each other",
        ),
        (["psi", "run", "--bank", "127.0.0.1:1", "--data", "d/bank.csv", "--insecure"], "must not carry the label"),
        (["psi", "show", "nope", "--bank-db", "sqlite:///b.db"], "PSI session 'nope' is not stored"),
        (["vertical", "register", "d", "--bank-db", "sqlite:///b.db"], "not a vertical top model directory"),
        (
            ["vertical", "serve", "--model-dir", "d", "--data", "d/platform.csv", "--insecure"],
            "not a vertical bottom model directory",
        ),
    ],
)
def test_mistakes_are_one_line_with_exit_code_2(data: Path, args: list[str], message: str) -> None:
    done = run(*args, cwd=data)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3  # one message (rich may wrap it)


def test_every_command_has_help() -> None:
    from typer.testing import CliRunner

    from yinqi.cli import app

    runner = CliRunner()
    for group, commands in {
        "psi": ["run", "serve", "show"],
        "vertical": ["synth", "train", "register", "serve", "score"],
    }.items():
        for command in commands:
            done = runner.invoke(app, [group, command, "--help"])
            assert done.exit_code == 0 and "Usage" in done.output, (group, command)
