"""The shell walk-through across separate processes (the embedded chain persists between
`yinqi` calls), `yinqi audit verify` exit codes, and the artifact check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts import build
from tests.conftest import IN_CI

YINQI = [sys.executable, "-m", "yinqi"]


def _yinqi(data_dir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YINQI_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("YINQI_CHAIN_RPC", None)
    env.pop("YINQI_DB_URL", None)
    proc = subprocess.run([*YINQI, *args], capture_output=True, text=True, env=env, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
def test_lifecycle_from_the_shell_persists_across_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    invoice = tmp_path / "invoice.txt"
    invoice.write_text("invoice 2026-001: 1,200,000 fen\n")
    deployed = json.loads(_yinqi(data, "chain", "deploy", "--json").stdout)
    assert json.loads(_yinqi(data, "chain", "deploy", "--json").stdout)["deployed_now"] is False
    _yinqi(data, "chain", "limit", "set", "debtor", "--limit", "5000000", "--advance-bps", "9000")
    _yinqi(
        data,
        "chain",
        "receivable",
        "create",
        "--to",
        "supplier",
        "--amount",
        "1200000",
        "--due-days",
        "60",
        "--doc",
        str(invoice),
    )
    _yinqi(data, "chain", "receivable", "split", "1", "--to", "supplier2", "--amount", "200000", "--as", "supplier")
    applied = _yinqi(data, "chain", "receivable", "apply", "2", "--as", "supplier2")
    assert "approved automatically" in applied.stdout
    funded = _yinqi(data, "chain", "receivable", "fund", "2")
    assert "turnaround" in funded.stdout
    shown = json.loads(_yinqi(data, "chain", "receivable", "show", "2", "--json").stdout)
    assert shown["state"] == "Financed" and shown["amount"] == 200_000 and shown["parent_id"] == 1
    assert shown["title_history"] == [deployed["accounts"]["supplier"], deployed["accounts"]["supplier2"]]
    assert shown["turnaround_seconds"] >= 0

    refused = _yinqi(data, "chain", "receivable", "fund", "2", ok=False)
    assert refused.returncode == 2
    assert "AlreadyFinanced(id=2)" in refused.stderr and "Traceback" not in refused.stderr

    events = [json.loads(line) for line in _yinqi(data, "chain", "watch", "--json").stdout.splitlines()]
    assert [e["event"] for e in events if e["event"] in {"Split", "Financed"}] == ["Split", "Financed"]

    _yinqi(data, "anchor", "add", str(invoice), "--kind", "document")
    flushed = json.loads(_yinqi(data, "anchor", "flush", "--json").stdout)
    assert len(flushed) == 1
    verified = _yinqi(data, "audit", "verify", flushed[0], "--data", str(invoice), "--json")
    assert json.loads(verified.stdout)["valid"] is True

    proof = json.loads(Path(flushed[0]).read_text())
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**proof, "root": "0x" + "22" * 32}))
    failed = _yinqi(data, "audit", "verify", str(tampered), ok=False)
    assert failed.returncode == 2 and "wrong root" in failed.stderr


def test_a_replayed_chain_has_the_same_blocks_and_transactions(data_dir: Path) -> None:
    from eth_utils import keccak

    from contracts import receivables as rv
    from contracts.client import open_chain

    first = open_chain()
    rid = rv.create(first, "supplier", 10, first.now() + 86400, keccak(b"p"))
    first.time_travel(first.now() + 3600)
    rv.transfer(first, rid, "supplier2", sender="supplier")
    second = open_chain()  # what the next process sees
    assert second.financing.address == first.financing.address and not second.deployed_now
    head = first.w3.eth.block_number
    assert second.w3.eth.block_number == head
    for n in range(head + 1):
        a, b = first.w3.eth.get_block(n), second.w3.eth.get_block(n)
        assert (a["timestamp"], a["stateRoot"], a["transactions"]) == (
            b["timestamp"],
            b["stateRoot"],
            b["transactions"],
        )
    # the two processes keep taking turns without forking the chain
    rv.transfer(second, rid, "supplier3", sender="supplier2")
    assert rv.get(first, rid).holder == first.address("supplier3")


def test_artifacts_match_the_sources() -> None:
    if not (build.HERE / "node_modules" / "solc").is_dir():
        if IN_CI:
            pytest.fail("contracts/node_modules missing: `make contracts` must run first")
        pytest.skip("contracts/node_modules missing (run `cd contracts && npm ci`)")
    assert build.check(build.compile_sources()) == []


def test_the_artifact_check_reports_a_difference() -> None:
    committed = {p.name: p.read_text() for p in build.ARTIFACTS.glob("*.json")}
    changed = {**committed, "AnchorRegistry.json": committed["AnchorRegistry.json"].replace("anchor", "anchr")}
    assert build.check(committed) == []
    assert any("AnchorRegistry.json: differs" in line for line in build.check(changed))


def test_watch_follow_streams_a_transfer_made_by_another_process(data_dir: Path) -> None:
    import time

    from eth_utils import keccak

    from contracts import receivables as rv
    from contracts.client import open_chain

    chain = open_chain()
    rid = rv.create(chain, "supplier", 1_000, chain.now() + 86400, keccak(b"watched"))
    env = {**os.environ, "YINQI_DATA_DIR": str(data_dir)}
    watcher = subprocess.Popen(
        [*YINQI, "chain", "watch", "--follow", "--json", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        rv.transfer(chain, rid, "supplier2", sender="supplier")
        deadline = time.monotonic() + 30
        seen = None
        assert watcher.stdout is not None
        while time.monotonic() < deadline and seen is None:
            line = watcher.stdout.readline()
            if line and json.loads(line)["event"] == "Transferred":
                seen = json.loads(line)
        assert seen is not None, "no Transferred event streamed within 30 s"
        assert seen["args"] == {"id": rid, "from": "supplier", "to": "supplier2"}
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


BAD_INPUT = [
    (
        ["chain", "receivable", "create", "--to", "supplier", "--amount", "abc", "--due-days", "1"],
        "Invalid value for '--amount'",
    ),
    (
        [
            "chain",
            "receivable",
            "create",
            "--to",
            "supplier",
            "--amount",
            str(2**256),
            "--due-days",
            "1",
            "--doc-hash",
            "0x" + "ab" * 32,
        ],
        "outside uint256",
    ),
    (
        [
            "chain",
            "receivable",
            "create",
            "--to",
            "supplier",
            "--amount",
            "10",
            "--due-days",
            "99999999999",
            "--doc-hash",
            "0x" + "ab" * 32,
        ],
        "DueDateTooFar",
    ),
    (
        [
            "chain",
            "receivable",
            "create",
            "--to",
            "supplier",
            "--amount",
            "10",
            "--due-days",
            str(10**30),
            "--doc-hash",
            "0x" + "ab" * 32,
        ],
        "outside uint64",
    ),
    (["chain", "receivable", "show", str(2**256)], "outside uint256"),
    (["chain", "receivable", "approve", "1", "--over-limit"], "give --reason"),
    (["chain", "advance-time", "--days", "inf"], "--days inf: expected a number"),
    (["chain", "advance-time", "--days", "nan"], "--days nan: expected a number"),
    (["chain", "advance-time", "--days", "-1"], "--days -1.0: expected a number"),
    (["chain", "watch", "--interval", "nan"], "--interval nan"),
    (
        ["chain", "party", "add", "0x" + "12" * 20, "--role", "banker", "--name", "x"],
        "--role 'banker': expected one of",
    ),
    (
        ["chain", "limit", "set", "debtor", "--limit", "1", "--advance-bps", "70000"],
        "advanceBps=70000 is outside uint16",
    ),
    (["chain", "grace-period", "--days", "400"], "--days 400.0: expected a number in 0..365"),
    (["chain", "bogus"], "No such command 'bogus'"),
    (["chain", "node", "--port", "70000"], "Invalid value for '--port'"),
    (["anchor", "flush", "--attempts", "0"], "Invalid value for '--attempts'"),
    (
        ["audit", "verify", "p.json", "--registry", "0x" + "12" * 20, "--anchorer", "nope"],
        "--anchorer 'nope': expected an address",
    ),
]


@pytest.mark.parametrize(
    ("args", "expected"), BAD_INPUT, ids=[" ".join(a[:3]) + f"-{i}" for i, (a, _) in enumerate(BAD_INPUT)]
)
def test_every_bad_number_or_choice_is_one_line_with_exit_code_2(
    data_dir: Path, args: list[str], expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from yinqi.cli import main

    monkeypatch.setattr(sys, "argv", ["yinqi", *args])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert "Traceback" not in err


def test_a_due_date_beyond_the_calendar_is_shown_not_raised() -> None:
    from contracts.receivables import Receivable
    from yinqi.cli_chain import _utc

    assert _utc(10**15) == f"{10**15} s after 1970 (beyond year 9999)"
    far = Receivable(1, "0x", "0x", 1, 2**63, 0, 0, "Created", "0x", 0, 0, "0x", 0)
    assert far.as_dict()["due_date_utc"].endswith("(beyond year 9999)")
