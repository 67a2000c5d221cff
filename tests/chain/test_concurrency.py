"""Concurrent commands on one chain account and one anchoring store (issue 11's reproductions):
three `anchor flush` runs printed "anchored 500" twice for one transaction and died of a
nonce error; three processes creating receivables lost 4 of 18 to `Invalid transaction nonce`.
Now: exactly one anchor per leaf, every create succeeds, the counts printed are true."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.client import open_chain
from contracts.outbox import AnchorOutbox

ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINQI_")}
    return {**env, "YINQI_DATA_DIR": str(data_dir), "COLUMNS": "200"}


def _together(commands: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    done = []
    for cmd, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return done


def test_three_concurrent_flushes_anchor_each_leaf_once_and_print_true_counts(data_dir: Path) -> None:
    chain = open_chain()  # the persisted embedded chain every process shares
    outbox = AnchorOutbox()
    leaves = {outbox.enqueue(f"alert {i}".encode(), "alert", f"a-{i}") for i in range(500)}
    runs = _together([[sys.executable, "-m", "yinqi", "anchor", "flush"]] * 3, _env(data_dir))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    printed = [int(re.search(r"anchored (\d+) record", r.stdout).group(1)) for r in runs]  # type: ignore[union-attr]
    assert sorted(printed) == [0, 0, 500]
    chain.sync()
    anchored = chain.registry.events.Anchored().get_logs(from_block=0)
    assert [e["args"]["leafCount"] for e in anchored] == [500]  # one transaction for the batch
    proofs = sorted((data_dir / "proofs").glob("*.json"))
    assert {json.loads(p.read_text())["leaf"] for p in proofs} == leaves and len(proofs) == 500
    assert outbox.pending() == 0


WORKER = """
import sys
from eth_utils import keccak
from contracts.client import open_chain
from contracts import receivables as rv
chain = open_chain()
for i in range(6):
    print(rv.create(chain, "supplier", 10, chain.now() + 86400, keccak(f"{sys.argv[1]}-{i}".encode())), flush=True)
"""


def test_three_processes_creating_receivables_as_one_account_all_succeed(data_dir: Path) -> None:
    chain = open_chain()
    runs = _together([[sys.executable, "-c", WORKER, f"w{w}"] for w in range(3)], _env(data_dir))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr[-400:] for r in runs]
    ids = sorted(int(line) for r in runs for line in r.stdout.split())
    assert ids == list(range(1, 19))
    chain.sync()
    assert chain.financing.functions.receivableCount().call() == 18


@pytest.mark.slow
def test_three_concurrent_receivable_create_commands_all_succeed(data_dir: Path, tmp_path: Path) -> None:
    """The reproduction as a user ran it: `yinqi chain receivable create` from three shells."""
    open_chain()
    loop = (
        'for i in 1 2 3 4 5 6; do "$0" -m yinqi chain receivable create --to supplier --amount 10 '
        '--due-days 1 --doc-hash 0x$(printf "%062x%02x" "$1" "$i") --json || exit 1; done'
    )
    runs = _together([["bash", "-c", loop, sys.executable, str(w)] for w in range(1, 4)], _env(data_dir))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr[-400:] for r in runs]
    ids = sorted(json.loads(doc)["id"] for r in runs for doc in re.findall(r"\{.*?\n\}", r.stdout, re.S))
    assert ids == list(range(1, 19))
