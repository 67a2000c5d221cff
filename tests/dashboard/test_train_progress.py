"""`bank train` streams each round from the running ServerApp: the rounds reach the caller while
the run still goes on (the report says "running" then), once each and in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federation.waiting import free_port

pytestmark = [pytest.mark.deployment, pytest.mark.slow]


def test_bank_train_streams_rounds_while_the_run_goes_on(tmp_path: Path) -> None:
    from clients.node.platform import PlatformNode, start, wait_connected
    from federation.synth import make_feature_files
    from server.deploy import bank as bank_ops

    files, test = make_feature_files(tmp_path / "synth", platforms=3, merchants=60, months=6, seed=3)
    state = bank_ops.up(port=free_port(), insecure=True, services_port=None, data_dir=tmp_path / "bank")
    out = tmp_path / "model"
    seen: list[tuple[str, str]] = []  # (line, the ServerApp's report status when it arrived)

    def on_round(line: str) -> None:
        seen.append((line, json.loads((out / "report.json").read_text())["status"]))

    try:
        nodes = [
            PlatformNode(bank=state.superlink_address, data=f, name=f"platform-{i}", connect_timeout=20.0)
            for i, f in enumerate(files)
        ]
        with (
            start(nodes[0], tmp_path / "n0") as s0,
            start(nodes[1], tmp_path / "n1") as s1,
            start(nodes[2], tmp_path / "n2") as s2,
        ):
            for sup, node in zip((s0, s1, s2), nodes, strict=True):
                wait_connected(sup, node)
            report, _ = bank_ops.train(
                {"rounds": 3, "test": test, "out": out},  # the platforms' default policy: DP-SGD + SecAgg+
                data_dir=tmp_path / "bank",
                min_platforms=3,  # the platforms' default policy: at least 2 others per round
                on_round=on_round,
            )
    finally:
        bank_ops.down(tmp_path / "bank")
    assert [line.split(":")[0] for line, _ in seen] == ["round 1/3", "round 2/3", "round 3/3"]
    assert seen[0][1] == "running"  # streamed: round 1 arrived before the run ended
    assert "ε platform-0" in seen[0][0]
    auc = report.rounds[0].federated_auc
    assert f"AUC {auc:.4f}" in seen[0][0]
