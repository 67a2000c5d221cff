"""`bank up --certs` starts the dashboard too (loopback, operators only); `bank down` stops it."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from federation.processes import pid_alive
from federation.waiting import free_port, wait_until
from server.deploy.bank import down, up
from server.deploy.state import BankState


@pytest.mark.deployment
def test_bank_up_serves_the_dashboard_and_down_stops_it(pki, tmp_path: Path) -> None:
    state = up(certs=pki.directory, port=free_port(), services_port=None, data_dir=tmp_path / "bank")
    board = state.extra["dashboard"]
    try:
        assert BankState.read(tmp_path / "bank").extra["dashboard"] == board
        assert board["url"].startswith("https://localhost:")
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(*pki.pair("ops"))
        with httpx.Client(verify=context, timeout=60) as ops:
            months = ops.get(board["url"] + "api/lending").json()["metrics"]["months"]
            assert [m["applications"] for m in months] == [0]  # a new bank: this month, no book yet
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(*pki.pair("platform-1"))
        with httpx.Client(verify=context, timeout=60) as platform:
            assert platform.get(board["url"] + "lending").status_code == 403
    finally:
        stopped = down(tmp_path / "bank")
    assert any(s.startswith("dashboard") for s in stopped)
    wait_until(lambda: not pid_alive(board["pid"]), timeout=20, what="the dashboard to stop")
