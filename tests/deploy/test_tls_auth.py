"""TLS + SuperNode authentication through `bank up/register/status/down` and `client up`'s
node runner: a registered key connects; an unregistered key and a plaintext node are refused
with one-line reasons on the platform's side, and the bank's status names the refused key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.deploy.conftest import assert_no_leftovers

pytestmark = [pytest.mark.deployment]


@pytest.fixture()
def bank(tmp_path: Path):  # type: ignore[no-untyped-def]
    from server.deploy import bank as bank_ops
    from server.security.ca import make_certs

    make_certs(tmp_path / "certs")
    state = bank_ops.up(port=free_port(), certs=tmp_path / "certs", services_port=None, data_dir=tmp_path / "bank")
    yield state
    try:
        bank_ops.down(tmp_path / "bank")
    finally:
        assert_no_leftovers(Path(state.flwr_home))


def _node(tmp_path: Path, state, name: str, data: Path, *, key: Path | None, ca: Path | None):  # type: ignore[no-untyped-def]
    from clients.node.platform import PlatformNode

    return PlatformNode(bank=state.superlink_address, data=data, name=name, key=key, ca=ca, connect_timeout=4.0)


def test_registered_key_connects_and_others_are_refused_clearly(bank, platform_files, tmp_path: Path) -> None:
    from clients.errors import NodeError
    from clients.node.keys import make_node_key
    from clients.node.platform import start, wait_connected
    from server.deploy import bank as bank_ops

    files, _ = platform_files
    ca = tmp_path / "certs" / "ca.crt"
    good_key, good_pub = make_node_key(tmp_path / "keys" / "good")
    bad_key, _ = make_node_key(tmp_path / "keys" / "stranger")
    bank_ops.register(good_pub, "good", data_dir=tmp_path / "bank")

    good = _node(tmp_path, bank, "good", files[0], key=good_key, ca=ca)
    stranger = _node(tmp_path, bank, "stranger", files[1], key=bad_key, ca=ca)
    plaintext = _node(tmp_path, bank, "plaintext", files[2], key=None, ca=None)
    with (
        start(good, tmp_path / "good") as good_sup,
        start(stranger, tmp_path / "stranger") as s1,
        start(plaintext, tmp_path / "plaintext") as s2,
    ):
        wait_connected(good_sup, good)
        with pytest.raises(NodeError, match=r"refused this node's key .*stranger: it is not registered"):
            wait_connected(s1, stranger)
        with pytest.raises(NodeError, match=r"without TLS"):
            wait_connected(s2, plaintext)
        status = bank_ops.status(tmp_path / "bank")
    assert [(n["name"], n["status"]) for n in status["nodes"]] == [("good", "online")]
    assert status["superlink"]["tls"] and status["superlink"]["node_auth"]
    refused = [r for r in status["rejected"] if r["kind"] == "unregistered node key"]
    assert refused and "is not registered" in refused[-1]["line"]
    for sup_dir in ("good", "stranger", "plaintext"):
        assert_no_leftovers(tmp_path / sup_dir / "flwr-home")


def test_register_rejects_a_file_that_is_not_an_ec_public_key(bank, tmp_path: Path) -> None:
    from server.deploy import bank as bank_ops
    from server.deploy.errors import DeployError

    bogus = tmp_path / "bogus.pub"
    bogus.write_text("not a key\n")
    with pytest.raises(DeployError, match=r"bogus\.pub: not an OpenSSH public key"):
        bank_ops.register(bogus, data_dir=tmp_path / "bank")
