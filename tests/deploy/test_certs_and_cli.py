"""Certificates, node keys and the deployment CLI's offline commands (no Flower processes)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest


def test_certs_chain_to_the_ca_and_name_loopback_and_extra_hosts(tmp_path: Path) -> None:
    from cryptography import x509

    from server.security.ca import make_certs

    certs = make_certs(tmp_path, hosts=["bank.example.com", "10.0.0.5"])

    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(str(certs.cert), str(certs.key))  # key matches cert
    cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(str(ip) for ip in san.get_values_for_type(x509.IPAddress)) == ["10.0.0.5", "127.0.0.1"]
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["bank.example.com", "localhost"]
    assert oct(certs.key.stat().st_mode & 0o777) == "0o600"


def test_node_key_is_p384_openssh_and_registers_as_flower_expects(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from clients.node.keys import make_node_key
    from server.deploy.control import public_key_bytes

    private, public = make_node_key(tmp_path / "node")

    key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert public.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert b"BEGIN PUBLIC KEY" in public_key_bytes(public)


def test_node_config_quotes_strings_and_keeps_numbers() -> None:
    from clients.node.commands import format_node_config

    text = format_node_config({"data-path": '/d/a "b".csv', "epsilon-budget": 3.5, "partition-id": 0, "x": None})

    assert text == 'data-path="/d/a \\"b\\".csv" epsilon-budget=3.5 partition-id=0'


def test_cli_keygen_refuses_to_overwrite_and_bank_commands_need_a_running_bank(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from federation.errors import YinqiError
    from yinqi.cli import app

    runner = CliRunner()
    first = runner.invoke(app, ["client", "keygen", "--out", str(tmp_path / "node")])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["client", "keygen", "--out", str(tmp_path / "node")])
    assert isinstance(again.exception, YinqiError) and "already exists" in str(again.exception)

    status = runner.invoke(app, ["bank", "status", "--data-dir", str(tmp_path / "bank")])
    assert isinstance(status.exception, YinqiError)
    assert "the bank is not up" in str(status.exception)


def test_bank_up_requires_a_choice_between_tls_and_insecure(tmp_path: Path) -> None:
    from server.deploy import bank
    from server.deploy.errors import DeployError
    from server.security.ca import CertError

    with pytest.raises(DeployError, match=r"--certs DIR .* or --insecure"):
        bank.up(data_dir=tmp_path)
    with pytest.raises(CertError, match=r"missing ca\.crt, server\.pem, server\.key \(run `yinqi bank certs init"):
        bank.up(certs=tmp_path / "nothing", data_dir=tmp_path)


@pytest.mark.parametrize("which", ["port", "services_port"])
def test_bank_up_refuses_a_port_something_else_holds_and_starts_nothing(tmp_path: Path, which: str) -> None:
    """A stale bank left on the port would otherwise answer for the new one (gRPC shares ports)."""
    import socket

    from federation.waiting import free_port
    from server.deploy import bank
    from server.deploy.errors import DeployError

    ports = {"port": free_port(), "services_port": free_port()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[which]))
        holder.listen()
        flag = "--port" if which == "port" else "--services-port"
        with pytest.raises(DeployError, match=rf"127\.0\.0\.1:{ports[which]} \({flag}\) is already in use"):
            bank.up(insecure=True, data_dir=tmp_path, **ports)
    assert not (tmp_path / "bank").exists() or not any((tmp_path / "bank").iterdir())


def test_a_second_grpc_service_cannot_share_a_taken_port() -> None:
    from federation.errors import YinqiError
    from proto.channel import listen, new_server

    first = new_server(1)
    port = listen(first, "127.0.0.1:0", None, insecure=True)
    try:
        with pytest.raises(YinqiError, match=rf"cannot listen on 127\.0\.0\.1:{port}"):
            listen(new_server(1), f"127.0.0.1:{port}", None, insecure=True)
    finally:
        first.stop(None)
