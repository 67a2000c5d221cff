"""Every shell block in README.md and docs/*.md runs, so the docs cannot drift from the commands.

A page is run as a user would follow it: its blocks in order, in one fresh directory (the
page's data dir is `.yinqi` there), with the project's `yinqi` on PATH. Blocks:

- ```sh / ```bash: the block is run as a script (`set -euo pipefail`);
- ```console: each `$ command` line is run; it must exit 0, or the code written at its end
  as `# exit code N`; the other lines are sample output and are not compared;
- a block whose info string also says `second-machine` needs another host (a bank and a
  platform on two machines) and is listed, not run; `runs-the-tests` marks the command that
  runs this very suite.

Processes a page leaves running in the background are stopped when the page ends.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "shell", "console"}
NOT_HERE = {"second-machine", "runs-the-tests"}
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
EXPECTED_CODE = re.compile(r"#\s*exit code (\d+)\s*$")


@dataclass(frozen=True)
class Block:
    kind: str
    tags: frozenset[str]
    body: str
    line: int


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        words = match.group("info").split()
        if not words or words[0] not in SHELLS:
            continue
        found.append(Block(words[0], frozenset(words[1:]), match.group("body"), text.count("\n", 0, match.start()) + 1))
    return found


def script_for(page: Path, page_blocks: list[Block]) -> str:
    """One bash script that runs the page's blocks in order and names the failing one."""
    lines = ["set -uo pipefail", 'fail() { echo "docs: $1" >&2; exit 1; }']
    for block in page_blocks:
        where = f"{page.name}:{block.line}"
        if block.tags & NOT_HERE:
            continue
        if block.kind == "console":
            for number, raw in enumerate(block.body.splitlines(), start=block.line + 1):
                if not raw.startswith("$ "):
                    continue
                command = raw[2:]
                expected = EXPECTED_CODE.search(command)
                code = int(expected.group(1)) if expected else 0
                label = shlex.quote(f"{page.name}:{number}: `{command.strip()}`")
                lines.append(f"( {command}\n)")
                lines.append(f'rc=$?; [ $rc -eq {code} ] || fail {label}" exited $rc, expected {code}"')
        else:
            body = shlex.quote("set -euo pipefail\n" + block.body)
            lines.append(f"bash -c {body} || fail {shlex.quote(f'block at {where} failed')}")
    return "\n".join(lines) + "\n"


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _stop_detached_bank(cwd: Path, env: dict[str, str]) -> None:
    """`yinqi bank up` detaches from the page's session: a page that failed before its
    `yinqi bank down` would leave the bank holding its ports for the next run."""
    if (cwd / ".yinqi" / "bank" / "deploy.json").exists():
        subprocess.run(["yinqi", "bank", "down"], cwd=cwd, env=env, capture_output=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_shell_block_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    page_blocks = blocks(page)
    runnable = [b for b in page_blocks if not b.tags & NOT_HERE]
    if not runnable:
        pytest.skip(f"{page.name} has no block that runs on one machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINQI_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["YINQI_REPO"] = str(ROOT)  # pages refer to shipped examples as $YINQI_REPO/...
    proc = subprocess.Popen(
        ["bash", "-c", script_for(page, page_blocks)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        output, _ = proc.communicate()
        pytest.fail(f"{page.name}: did not finish within 900 s\n{output[-4000:]}")
    finally:
        _kill_session(proc.pid)
        _stop_detached_bank(tmp_path, env)
    assert proc.returncode == 0, f"{page.name}:\n{output[-6000:]}"


def test_blocks_are_found_and_tagged_as_the_page_says(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n\n```console\n$ true\nsample output\n$ false   # exit code 1\n```\n\n"
        "```sh second-machine\nexit 9\n```\n\n```toml\nnot = 'shell'\n```\n"
    )
    found = blocks(page)
    assert [(b.kind, sorted(b.tags), b.line) for b in found] == [("console", [], 3), ("sh", ["second-machine"], 9)]
    script = script_for(page, found)
    assert "exit 9" not in script
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    page.write_text("```console\n$ false\n```\n")
    result = subprocess.run(["bash", "-c", script_for(page, blocks(page))], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "page.md:2: `false`" in result.stderr


EPHEMERAL_PORTS = range(32768, 61000)  # Linux's default ip_local_port_range
FIXED_PORT = re.compile(r"(?:--(?:services-|dashboard-)?port[ =]|127\.0\.0\.1:|localhost:|0\.0\.0\.0:)(\d{2,5})\b")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_ports_the_page_listens_on_are_outside_the_ephemeral_range(page: Path) -> None:
    """Any process's outgoing connection may hold an ephemeral port: a page that listens on one
    fails now and then, when another test's client happens to have it (CI saw 50161 taken)."""
    taken = [
        (block.line, int(port))
        for block in blocks(page)
        if not block.tags & NOT_HERE
        for port in FIXED_PORT.findall(block.body)
        if int(port) in EPHEMERAL_PORTS
    ]
    assert taken == [], f"{page.name}: blocks at lines {taken} use ephemeral ports; pick one below 32768"
