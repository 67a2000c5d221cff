"""The bank's CA (`yinqi bank certs init|issue|revoke|list`): never overwritten, one certificate
per party naming its role, revocation in a CRL the CA signs, and the identities the services
read from those certificates."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from server.security.ca import CertError, CertificateAuthority
from server.security.identity import AuthError, RevocationList, caller_identity, identity_of
from server.security.roles import Identity
from yinqi.cli import app

runner = CliRunner()


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_refuses_to_overwrite_an_existing_ca(tmp_path: Path) -> None:
    CertificateAuthority.create(tmp_path / "certs")
    before = (tmp_path / "certs" / "ca.crt").read_bytes()
    with pytest.raises(
        CertError, match=r"already holds ca\.crt, ca\.key, server\.pem, server\.key; refusing to overwrite"
    ):
        CertificateAuthority.create(tmp_path / "certs")
    again = runner.invoke(app, ["bank", "certs", "init", "--out", str(tmp_path / "certs")])
    assert isinstance(again.exception, CertError) and again.exception.exit_code == 2
    assert (tmp_path / "certs" / "ca.crt").read_bytes() == before


def test_issued_certificate_names_party_and_role_and_chains_to_the_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    issued = ca.issue("platform-a", "platform")
    cert = _cert(Path(issued.cert))
    cert.verify_directly_issued_by(_cert(tmp_path / "certs" / "ca.crt"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "platform-a"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "platform"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key = tmp_path / "certs" / "clients" / "platform-a.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert identity_of(Path(issued.cert).read_bytes()) == Identity("platform-a", "platform", issued.serial)
    assert [(i.name, i.role, i.serial) for i in ca.issued()] == [("platform-a", "platform", issued.serial)]


def test_issue_refuses_bad_names_unknown_roles_a_second_role_and_existing_files(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    ca.issue("ops", "operator")
    with pytest.raises(CertError, match="role 'admin': expected one of platform, operator, iot-monitor, auditor"):
        ca.issue("root", "admin")
    with pytest.raises(CertError, match=r"party name '\.\./evil'"):
        ca.issue("../evil", "platform")
    with pytest.raises(CertError, match="party 'ops' already has a operator certificate"):
        ca.issue("ops", "platform")
    with pytest.raises(CertError, match=r"ops\.crt already exists; refusing to overwrite"):
        ca.issue("ops", "operator")  # same role, same place: the old key stays
    renewed = ca.issue("ops", "operator", out=tmp_path / "renewed")
    assert len({i.serial for i in ca.issued()}) == 2 and renewed.role == "operator"


def test_revoke_by_name_or_serial_is_signed_into_the_crl(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    a = ca.issue("platform-a", "platform")
    b = ca.issue("platform-b", "platform")
    crl_path = tmp_path / "certs" / "crl.pem"
    checker = RevocationList(crl_path, tmp_path / "certs" / "ca.crt")
    assert checker.revoked_at(a.serial) is None
    [revoked] = ca.revoke("platform-a", "laptop lost")
    assert revoked.serial == a.serial and revoked.reason == "laptop lost"
    ca.revoke("0x" + b.serial.lower())
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.is_signature_valid(_cert(tmp_path / "certs" / "ca.crt").public_key())
    assert {format(r.serial_number, "X") for r in crl} == {a.serial, b.serial}
    assert checker.revoked_at(a.serial) == revoked.revoked_at  # re-read because the file changed
    with pytest.raises(CertError, match="no live certificate of party or serial 'platform-a'"):
        ca.revoke("platform-a")
    listed = runner.invoke(app, ["bank", "certs", "list", "--certs", str(tmp_path / "certs"), "--json"])
    assert [(i["name"], bool(i["revoked_at"])) for i in json.loads(listed.output)] == [
        ("platform-a", True),
        ("platform-b", True),
    ]


def test_a_missing_or_foreign_revocation_list_refuses_everyone(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    other = CertificateAuthority.create(tmp_path / "other")
    issued = ca.issue("ops", "operator")
    pem = Path(issued.cert).read_bytes()
    context = {"x509_pem_cert": [pem]}
    foreign = RevocationList(other.crl_path, tmp_path / "certs" / "ca.crt")
    with pytest.raises(AuthError, match="not signed by the bank's CA; refusing every caller"):
        caller_identity(context, foreign)
    (tmp_path / "certs" / "crl.pem").unlink()
    missing = RevocationList(ca.crl_path, tmp_path / "certs" / "ca.crt")
    with pytest.raises(AuthError, match=r"crl\.pem is missing; refusing every caller"):
        caller_identity(context, missing)


def test_the_server_certificate_and_a_foreign_subject_are_no_caller_identity(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    with pytest.raises(AuthError, match="is not a client certificate"):
        identity_of(ca.server.cert.read_bytes())
    with pytest.raises(AuthError, match="no client certificate"):
        caller_identity({}, None)


def test_a_service_certificate_for_a_platform_names_party_role_and_hosts_with_server_auth(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    client = ca.issue("shop-a", "platform")
    service = ca.issue("shop-a", "platform", server_hosts=["shop-a.example", "10.0.0.7", "shop-a.example"])
    assert Path(service.cert) == tmp_path / "certs" / "servers" / "shop-a.crt"
    assert Path(client.cert) == tmp_path / "certs" / "clients" / "shop-a.crt"  # both live side by side
    cert = _cert(Path(service.cert))
    cert.verify_directly_issued_by(_cert(tmp_path / "certs" / "ca.crt"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "shop-a"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "platform"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["shop-a.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert stat.S_IMODE(service.key.stat().st_mode) == 0o600
    with pytest.raises(AuthError, match="is not a client certificate"):  # it can never pass as a caller
        identity_of(Path(service.cert).read_bytes())
    assert [(i.usage, i.hosts) for i in ca.issued()] == [("client", []), ("server", ["shop-a.example", "10.0.0.7"])]
    both = ca.revoke("shop-a", "platform left")
    assert {r.serial for r in both} == {client.serial, service.serial}


def test_a_service_certificate_needs_valid_hosts_and_keeps_the_partys_one_role(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    ca.issue("shop-a", "platform")
    with pytest.raises(CertError, match="party 'shop-a' already has a platform certificate"):
        ca.issue("shop-a", "operator", server_hosts=["shop-a.example"])
    for bad in ("-shop.example", "shop a", "shop_a.example", "x" * 300):
        with pytest.raises(CertError, match=r"--server-host .*: expected an IP address or a DNS name"):
            ca.issue("shop-a", "platform", server_hosts=[bad])
    with pytest.raises(CertError, match="needs at least one --server-host"):
        ca.issue("shop-a", "platform", server_hosts=[])
    assert not (tmp_path / "certs" / "servers").exists()  # nothing written for a refused request


def test_certs_issue_server_host_on_the_command_line(tmp_path: Path) -> None:
    certs = str(tmp_path / "certs")
    assert runner.invoke(app, ["bank", "certs", "init", "--out", certs]).exit_code == 0
    made = runner.invoke(
        app,
        ["bank", "certs", "issue", "shop-a", "--role", "platform", "--certs", certs,
         "--server-host", "shop-a.example", "--server-host", "127.0.0.1", "--json"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    issued = json.loads(made.output)
    assert (issued["usage"], issued["hosts"], issued["role"]) == ("server", ["shop-a.example", "127.0.0.1"], "platform")
    bad = runner.invoke(
        app, ["bank", "certs", "issue", "x", "--role", "platform", "--certs", certs, "--server-host", "a b"]
    )
    assert isinstance(bad.exception, CertError) and bad.exception.exit_code == 2  # one line, exit code 2
    listed = runner.invoke(app, ["bank", "certs", "list", "--certs", certs, "--json"])
    assert [(i["name"], i["usage"]) for i in json.loads(listed.output)] == [("shop-a", "server")]
    table = runner.invoke(app, ["bank", "certs", "list", "--certs", certs])
    assert "server:" in table.output and "shop-a" in table.output
