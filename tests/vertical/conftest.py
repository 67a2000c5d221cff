"""Fixtures for vertical FL: the bank's CA (`server.security.ca`) with a certificate per party
and role, and a bank PSI service over mutual TLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from proto.channel import ClientTls, ServerTls, connect, listen
from server.security.ca import CertificateAuthority
from server.vertical.psi_service import register
from server.vertical.store import PsiStore


@dataclass(frozen=True)
class Party:
    """A certificate and its key (PEM files)."""

    cert: Path
    key: Path


@dataclass
class Pki:
    ca: Path
    bank_server: Party  # the bank's server certificate (server.pem of `bank certs init`)
    platform_server: Party  # platform-a's service certificate (`issue --server-host 127.0.0.1`)
    platform: Party  # CN platform-a, role platform
    operator: Party  # CN bank-ops, role operator: the bank's operator who scores
    auditor: Party  # right CA, wrong role
    no_role: Party  # right CA (its key signed it), but no role at all
    stranger: Party  # another CA, role platform
    stranger_ca: Path

    def client(self, who: Party, ca: Path | None = None) -> ClientTls:
        return ClientTls(ca or self.ca, who.cert, who.key)

    def server(self, who: Party) -> ServerTls:
        return ServerTls(who.cert, who.key, self.ca)


def issued(ca: CertificateAuthority, name: str, role: str, *, server_hosts: list[str] | None = None) -> Party:
    made = ca.issue(name, role, server_hosts=server_hosts)
    return Party(Path(made.cert), made.key)


def roleless_certificate(ca_dir: Path, out: Path) -> Party:
    """A client certificate the CA's own key signed without an OU: what a careless tool could
    issue. It chains to the bank's CA, yet names no role."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nobody")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA384())  # type: ignore[arg-type]
    )
    out.mkdir(parents=True, exist_ok=True)
    party = Party(out / "nobody.crt", out / "nobody.key")
    party.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    party.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return party


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    bank = CertificateAuthority.create(root / "bank-ca")
    other = CertificateAuthority.create(root / "other-ca")
    return Pki(
        ca=bank.server.ca,
        bank_server=Party(bank.server.cert, bank.server.key),
        platform_server=issued(bank, "platform-a", "platform", server_hosts=["127.0.0.1", "localhost"]),
        platform=issued(bank, "platform-a", "platform"),
        operator=issued(bank, "bank-ops", "operator"),
        auditor=issued(bank, "auditor-1", "auditor"),
        no_role=roleless_certificate(root / "bank-ca", root / "roleless"),
        stranger=issued(other, "platform-a", "platform"),
        stranger_ca=other.server.ca,
    )


@dataclass
class PsiServer:
    address: str
    store: PsiStore
    bank_ids: list[str]

    def channel(self, tls: ClientTls) -> grpc.Channel:
        return connect(self.address, tls)


@pytest.fixture
def psi_server(pki: Pki, tmp_path: Path) -> Iterator[Callable[[list[str]], PsiServer]]:
    """Start the bank's PSI service (mutual TLS) for a given list of bank ids."""
    servers: list[grpc.Server] = []

    def start(bank_ids: list[str], **options: object) -> PsiServer:
        store = PsiStore(f"sqlite:///{tmp_path / f'bank{len(servers)}.db'}")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        register(server, store, lambda: list(bank_ids), **options)
        port = listen(server, "127.0.0.1:0", pki.server(pki.bank_server))
        server.start()
        servers.append(server)
        return PsiServer(f"127.0.0.1:{port}", store, bank_ids)

    yield start
    for server in servers:
        server.stop(0)
