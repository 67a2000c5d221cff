"""The bank's embedded chain served as a standard JSON-RPC endpoint (issue 10): web3.py's
HTTPProvider and yinqi's `--rpc` work against it, it never signs or rewrites history, and an
auditor verifies a proof from an empty directory with only proof, document and RPC URL —
leaving the directory empty."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from contracts import receivables as rv
from contracts.client import open_chain
from contracts.errors import ChainError
from contracts.node import ChainNode
from federation.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
INVOICE = b"Invoice 2026-001\ndebtor: core enterprise\namount: 1,200,000.00 CNY\n"


@pytest.fixture
def served(data_dir: Path) -> Iterator[tuple[Any, ChainNode]]:
    """The persisted embedded chain of this data dir, served on a free loopback port."""
    chain = open_chain()
    node = ChainNode(chain.tester, "127.0.0.1", 0).start()
    try:
        yield chain, node
    finally:
        node.stop()


def _rpc(url: str, body: Any, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_web3_over_http_sees_the_same_chain_and_what_other_processes_add(served) -> None:  # type: ignore[no-untyped-def]
    from web3 import HTTPProvider, Web3

    chain, node = served
    w3 = Web3(HTTPProvider(node.url))
    assert w3.eth.chain_id == chain.chain_id
    assert w3.eth.get_block(0)["hash"] == chain.w3.eth.get_block(0)["hash"]
    assert w3.eth.get_code(chain.registry.address) == chain.w3.eth.get_code(chain.registry.address)
    other = open_chain()  # another process appending to the journal
    rid = rv.create(other, "supplier", 123, other.now() + 86400, keccak(b"seen over http"))
    financing = w3.eth.contract(address=chain.financing.address, abi=chain.financing.abi)
    assert financing.functions.receivable(rid).call()[7] == 123
    logs = financing.events.ReceivableCreated().get_logs(from_block=0)
    assert [log["args"]["amount"] for log in logs] == [123]


def test_yinqi_through_the_node_signs_locally_and_the_journal_records_it(served) -> None:  # type: ignore[no-untyped-def]
    chain, node = served
    remote = open_chain(node.url)  # the same deployment, found by chain id + genesis
    assert remote.financing.address == chain.financing.address and not remote.deployed_now
    rid = rv.create(remote, "supplier", 456, remote.now() + 86400, keccak(b"sent over http"))
    with pytest.raises(ChainError) as info:
        rv.fund(remote, rid, sender="supplier")
    assert info.value.error_name == "AccessControlUnauthorizedAccount"  # revert data decoded over HTTP
    assert rv.get(open_chain(), rid).amount == 456  # a fresh replay of the journal has it


@pytest.mark.parametrize(
    "method",
    ["eth_sendTransaction", "eth_accounts", "evm_snapshot", "evm_revert", "personal_unlockAccount", "evm_mine"],
)
def test_the_node_never_signs_for_anyone_or_rewrites_history(served, method: str) -> None:  # type: ignore[no-untyped-def]
    chain, node = served
    head = chain.w3.eth.block_number
    status, reply = _rpc(
        node.url, {"jsonrpc": "2.0", "id": 7, "method": method, "params": [{"from": chain.address("bank")}]}
    )
    assert status == 200 and reply["id"] == 7 and reply["error"]["code"] == -32601
    assert chain.now() and open_chain().w3.eth.block_number == head


def test_time_travel_only_when_allowed(data_dir: Path) -> None:
    chain = open_chain()
    node = ChainNode(chain.tester, "127.0.0.1", 0, allow_time_travel=True).start()
    try:
        remote = open_chain(node.url)
        target = remote.now() + 40 * 86400
        remote.time_travel(target)
        assert open_chain().now() >= target
    finally:
        node.stop()


def test_malformed_requests_get_json_rpc_errors(served) -> None:  # type: ignore[no-untyped-def]
    _, node = served
    assert _rpc(node.url, None, raw=b"{not json")[1]["error"]["code"] == -32700
    assert _rpc(node.url, [])[1]["error"]["code"] == -32600
    assert _rpc(node.url, {"id": 1})[1]["error"]["code"] == -32600
    assert _rpc(node.url, {"id": 1, "method": "eth_chainId", "params": "x"})[1]["error"]["code"] == -32602
    batch = _rpc(node.url, [{"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []} for i in range(3)])[
        1
    ]
    assert [r["id"] for r in batch] == [0, 1, 2] and all(r["result"].startswith("0x") for r in batch)
    import http.client
    from urllib.parse import urlparse

    where = urlparse(node.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    conn.putrequest("POST", "/")
    conn.putheader("Content-Length", str(6 * 1024 * 1024))  # announced, never sent: refused unread
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


# ----- the auditor's whole session, as separate processes --------------------------------------


def _yinqi(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yinqi", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_an_auditor_verifies_from_an_empty_directory_and_leaves_it_empty(tmp_path: Path) -> None:
    bank_dir, auditor_dir = tmp_path / "bank", tmp_path / "auditor"
    bank_dir.mkdir()
    auditor_dir.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("YINQI_")} | {"COLUMNS": "200"}
    bank_env = {**base, "YINQI_DATA_DIR": str(bank_dir / ".yinqi")}
    (bank_dir / "invoice.txt").write_bytes(INVOICE)
    assert _yinqi("anchor", "add", "invoice.txt", "--kind", "document", cwd=bank_dir, env=bank_env).returncode == 0
    assert _yinqi("anchor", "flush", cwd=bank_dir, env=bank_env).returncode == 0
    trust = json.loads(_yinqi("anchor", "trust", "--json", cwd=bank_dir, env=bank_env).stdout)
    proof = _yinqi(
        "anchor", "proof", "document", "invoice.txt", "--out", str(tmp_path / "proof.json"), cwd=bank_dir, env=bank_env
    )
    assert proof.returncode == 0, proof.stderr

    url_file = tmp_path / "node.url"
    node = subprocess.Popen(
        [sys.executable, "-m", "yinqi", "chain", "node", "--port", "0", "--url-file", str(url_file)],
        cwd=bank_dir,
        env=bank_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: url_file.exists() or node.poll() is not None, timeout=60, what="the chain node listening")
        assert node.poll() is None, node.stderr.read() if node.stderr else ""
        url = url_file.read_text().strip()
        auditor_env = dict(base)  # no data dir, no config: only what the auditor was handed
        flags = ["--rpc", url, "--registry", trust["registry"], "--anchorer", trust["anchorers"][0]]
        ok = _yinqi(
            "audit",
            "verify",
            str(tmp_path / "proof.json"),
            "--document",
            str(bank_dir / "invoice.txt"),
            *flags,
            "--json",
            cwd=auditor_dir,
            env=auditor_env,
        )
        assert ok.returncode == 0, ok.stderr
        verified = json.loads(ok.stdout)
        assert (verified["valid"], verified["ref"], verified["anchorer"]) == (
            True,
            "invoice.txt",
            trust["anchorers"][0],
        )

        forged = tmp_path / "forged.txt"
        forged.write_bytes(INVOICE.replace(b"1,200,000.00", b"9,200,000.00"))
        bad = _yinqi(
            "audit",
            "verify",
            str(tmp_path / "proof.json"),
            "--document",
            str(forged),
            *flags,
            cwd=auditor_dir,
            env=auditor_env,
        )
        assert bad.returncode == 2 and "tampered record" in bad.stderr and bad.stderr.count("\n") == 1

        untrusting = _yinqi(
            "audit", "verify", str(tmp_path / "proof.json"), "--rpc", url, cwd=auditor_dir, env=auditor_env
        )
        assert untrusting.returncode == 2 and "no trusted anchoring contract" in untrusting.stderr
        assert list(auditor_dir.iterdir()) == []  # the auditor's directory is left empty
    finally:
        node.send_signal(signal.SIGTERM)
        out, err = node.communicate(timeout=30)
    assert node.returncode == 0, err
    assert re.search(r"serving the embedded chain \(chain id \d+\) at http://127\.0\.0\.1:\d+", out)
    assert not url_file.exists()
