"""`yinqi client status`: the node's policy, approved ClientApps (pinned by identity), ε and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from clients.node.approval import installed_identity
from clients.node.platform import PlatformNode
from clients.node.status import write_node_state
from clients.policy import PrivacyPolicy
from clients.refusals import LOG_KEY, record_refusal


def yinqi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yinqi", *args], capture_output=True, text=True, timeout=120)


def _node(tmp_path: Path) -> PlatformNode:
    data = tmp_path / "features.csv"
    data.write_text("merchant_id,amount,default\nA,1,0\n")
    return PlatformNode(
        bank="bank.example:9092",
        data=data,
        name="acme",
        ledger_db=f"sqlite:///{tmp_path / 'ledger.db'}",
        policy=PrivacyPolicy(max_epsilon=4.0, source="acme-policy.toml"),
        epsilon_budget=12.0,
        refusal_log=tmp_path / "refusals.jsonl",
    )


def test_status_shows_policy_identity_budget_and_refusals(tmp_path: Path) -> None:
    from clients.ledger import PrivacyLedger

    node = _node(tmp_path)
    write_node_state(tmp_path, node.state(os.getpid()))
    PrivacyLedger(str(node.ledger_db)).record("acme", "run-1", 1, 2.5, 1e-5)
    record_refusal(node.node_config(), "77", "statistics", "platform acme's policy requires DP-SGD [--no-dp]")

    done = yinqi("client", "status", "--workdir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    identity = installed_identity("clients.app:app")
    assert state["running"] is True and state["name"] == "acme" and state["bank"] == "bank.example:9092"
    assert state["apps"] == [
        {
            "component": "clients.app:app",
            "identity": identity.digest,
            "describe": identity.describe(),
            "unchanged": True,
        }
    ]
    assert state["ledger"]["spent"] == 2.5 and state["ledger"]["lifetime"] == 12.0 and state["ledger"]["left"] == 9.5
    assert state["refusal_count"] == 1 and state["refusals"][0]["run_id"] == "77"

    text = yinqi("client", "status", "--workdir", str(tmp_path))
    assert text.returncode == 0, text.stderr
    assert f"identity {identity.digest}" in text.stdout
    assert "ε per run ≤ 4, δ ≤ 1e-05; lifetime ε ≤ 12" in text.stdout
    assert "ε spent over all runs 2.500, 9.500 left of 12" in text.stdout
    assert "run 77 (statistics): platform acme's policy requires DP-SGD [--no-dp]" in text.stdout


def test_status_of_a_directory_without_a_node_is_one_line(tmp_path: Path) -> None:
    done = yinqi("client", "status", "--workdir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no node has run here (node.json missing); start one with `yinqi client up`"
    ]


def test_a_refusal_recorded_while_the_node_connects_is_still_shown(tmp_path: Path, monkeypatch) -> None:
    """A run can reach a node (and be refused) as soon as the SuperLink sees it, before `client
    up` has noticed it is connected: that refusal is shown too, the ones of earlier runs are not.
    (CI once lost it: `client up` counted the refusal log only after connecting.)"""
    import pytest

    from clients.errors import NodeError
    from clients.node import platform
    from federation.processes import Supervisor

    node = _node(tmp_path)
    record_refusal({LOG_KEY: str(node.refusal_log)}, "run-1", "statistics", "an earlier run")
    waiting = "import time; time.sleep(20)"  # a bound: the node 'exits' when its refusal is seen

    started: list[Supervisor] = []

    def start(node: PlatformNode, workdir: Path) -> Supervisor:  # stand-ins for SuperNode and worker
        sup = Supervisor(tmp_path / "logs")
        sup.start("supernode", [sys.executable, "-c", waiting])
        sup.start("worker", [sys.executable, "-c", waiting])
        started.append(sup)
        return sup

    def connected_after_a_refusal(sup: Supervisor, node: PlatformNode) -> None:
        record_refusal({LOG_KEY: str(node.refusal_log)}, "run-2", "statistics", "below the policy")

    shown = []

    def on_refusal(refusal) -> None:
        shown.append(refusal.run_id)
        os.kill(started[0].procs[0].pid, 9)

    monkeypatch.setattr(platform, "start", start)
    monkeypatch.setattr(platform, "wait_connected", connected_after_a_refusal)
    with pytest.raises(NodeError):
        platform.serve(node, tmp_path, on_refusal=on_refusal)
    assert shown == ["run-2"]
