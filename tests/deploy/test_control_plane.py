"""The SuperLink's control plane is not on the network (issue 10): with `yinqi bank up`, the
platforms' address serves only Flower's Fleet API. An outsider process holding only `ca.crt`
cannot list nodes, register its own node key or start a run there; its key then cannot connect;
the bank's status names the refused requests; the SuperLink itself listens on loopback only; and
the operator's `yinqi bank register` on the bank's host still works. Every party is a separate
process started as a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.deploy.conftest import assert_no_leftovers

pytestmark = [pytest.mark.deployment, pytest.mark.slow]


def _yinqi(env: dict[str, str], *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "yinqi", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _outsider(address: str, ca: Path, rogue_pub: Path, app_dir: Path, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.deploy.outsider", address, str(ca), str(rogue_pub), str(app_dir), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLWR_TELEMETRY_ENABLED": "0"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _non_loopback_ip() -> str | None:
    """One of this host's addresses that is not loopback (None when there is none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent for UDP connect
            ip = probe.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


@pytest.fixture()
def bank(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YINQI_", "FLWR_"))}
    env.update(YINQI_DATA_DIR=str(tmp_path / "bank-data"), FLWR_TELEMETRY_ENABLED="0", COLUMNS="200")
    assert _yinqi(env, "bank", "certs", "init", "--out", str(tmp_path / "certs")).returncode == 0
    port = free_port()
    up = _yinqi(env, "bank", "up", "--certs", str(tmp_path / "certs"), "--port", str(port), "--no-services", "--json")
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    try:
        yield env, state
    finally:
        _yinqi(env, "bank", "down")
        assert_no_leftovers(Path(state["flwr_home"]))


def test_an_outsider_with_ca_crt_cannot_reach_the_control_plane(bank, platform_files, tmp_path: Path) -> None:
    from clients.errors import NodeError
    from clients.node.keys import make_node_key
    from clients.node.platform import PlatformNode, start, wait_connected
    from server.deploy.appdir import write_app_dir

    env, state = bank
    public, internal = state["superlink_address"], state["control_address"]
    ca = tmp_path / "certs" / "ca.crt"
    rogue_key, rogue_pub = make_node_key(tmp_path / "rogue")
    app_dir = write_app_dir(tmp_path / "outsider-app", {"engine": "outsider"})

    # The attack is real: the same script on the SuperLink's own port lists its nodes.
    assert _outsider(internal, ca, rogue_pub, app_dir, "--only", "list")["list_nodes"] == {"ok": True, "result": []}

    attack = _outsider(public, ca, rogue_pub, app_dir)
    assert {name: result["ok"] for name, result in attack.items()} == {
        "list_nodes": False,
        "register": False,
        "start_run": False,
    }, attack
    assert "403" in attack["list_nodes"]["error"] or "Forbidden" in attack["list_nodes"]["error"], attack

    status = json.loads(_yinqi(env, "bank", "status", "--json").stdout)
    assert status["nodes"] == []  # no rogue key was registered
    refused = [r["line"] for r in status["rejected"] if r["kind"] == "control-plane request from the network"]
    assert any("/v1/control/list-nodes" in line for line in refused), status["rejected"]
    assert any("/v1/control/register-node" in line for line in refused), status["rejected"]
    assert any("/v1/control/start-run" in line for line in refused), status["rejected"]

    # The rogue key was never registered, so its SuperNode cannot connect through the gate.
    rogue = PlatformNode(bank=public, data=platform_files[0][0], name="rogue", key=rogue_key, ca=ca, connect_timeout=4)
    with start(rogue, tmp_path / "rogue-node") as supervisor, pytest.raises(NodeError, match="not registered"):
        wait_connected(supervisor, rogue)
    assert_no_leftovers(tmp_path / "rogue-node" / "flwr-home")

    # The operator, on the bank's host, registers keys through the loopback Control API.
    _, good_pub = make_node_key(tmp_path / "good")
    registered = _yinqi(env, "bank", "register", str(good_pub), "--name", "good", "--json")
    assert registered.returncode == 0, registered.stderr
    assert [n["name"] for n in json.loads(_yinqi(env, "bank", "status", "--json").stdout)["nodes"]] == ["good"]


def test_the_superlink_listens_on_loopback_only(bank) -> None:
    _env, state = bank
    internal_port = int(state["control_address"].rsplit(":", 1)[1])
    assert state["control_address"].startswith("127.0.0.1:")
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("this host has no non-loopback address to try")
    with pytest.raises(OSError), socket.create_connection((ip, internal_port), timeout=3):
        pass
