"""A platform killed mid-round: the round completes with the others (SecAgg+ dropout tolerance)
and the report names who dropped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import assert_no_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.deployment]


def test_platform_killed_mid_round_is_dropped_and_named(platform_files, tmp_path: Path) -> None:
    from server.fl.config import FederationConfig
    from yinqi.harness.loopback import run_deployed

    files, test = platform_files
    config = FederationConfig(
        clients=files, rounds=2, epsilon=8.0, dp=True, secagg=True, out=tmp_path / "model", test=test, min_clients=2
    )
    victim = config.platform_names[2]

    def kill_during_training(fed) -> None:  # type: ignore[no-untyped-def]
        # Messages to a platform: stats, then per SecAgg+ round setup, share keys, train...
        log = fed.workers[victim].log

        def watch() -> None:
            deadline = time.monotonic() + 120
            while log.read_text().count("task acquired") < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            fed.kill_node(victim)

        threading.Thread(target=watch, daemon=True).start()

    report = run_deployed(
        config, workdir=tmp_path / "deploy", reply_timeout=8.0, timeout=240, on_ready=kill_during_training
    )

    assert [r.aggregated for r in report.rounds] == [True, True]
    assert victim not in report.rounds[0].participants
    assert len(report.rounds[0].participants) == 2
    assert any(victim in text for text in report.rounds[0].dropped)
    assert_no_leftovers(tmp_path / "deploy" / "flwr-home")
