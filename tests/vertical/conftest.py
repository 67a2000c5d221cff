"""Fixtures for vertical FL: a throw-away PKI with roles, a bank PSI service over mutual TLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from proto.channel import ClientTls, connect
from server.vertical.psi_service import register
from server.vertical.store import PsiStore
from yinqi.harness.pki import Authority, Issued


@dataclass
class Pki:
    ca: Path
    bank_server: Issued
    platform_server: Issued
    platform: Issued  # CN platform-a, role platform
    bank: Issued  # CN bank-ops, role bank
    auditor: Issued  # right CA, wrong role
    no_role: Issued  # right CA, no role at all
    stranger: Issued  # another CA, role platform
    stranger_ca: Path

    def client(self, who: Issued, ca: Path | None = None) -> ClientTls:
        return ClientTls(ca or self.ca, who.cert, who.key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    authority = Authority(root / "bank-ca")
    other = Authority(root / "other-ca", "somebody else's CA")
    return Pki(
        ca=authority.ca,
        bank_server=authority.issue("bank-server", "bank", None, server=True),
        platform_server=authority.issue("platform-server", "platform-a", None, server=True),
        platform=authority.issue("platform-a", "platform-a", "platform"),
        bank=authority.issue("bank-ops", "bank-ops", "bank"),
        auditor=authority.issue("auditor", "auditor-1", "auditor"),
        no_role=authority.issue("no-role", "nobody", None),
        stranger=other.issue("stranger", "platform-a", "platform"),
        stranger_ca=other.ca,
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
        credentials = grpc.ssl_server_credentials(
            [(pki.bank_server.key.read_bytes(), pki.bank_server.cert.read_bytes())],
            root_certificates=pki.ca.read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        servers.append(server)
        return PsiServer(f"127.0.0.1:{port}", store, bank_ids)

    yield start
    for server in servers:
        server.stop(0)
