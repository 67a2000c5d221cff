"""Fixtures for the dashboard: the bank's CA with an operator, a platform and an auditor; a
small loan book (one model, an approved and a declined application, a draw); a running
dashboard over mutual TLS on a free loopback port; HTTPS clients holding each certificate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.client import LocalBank
from server.dashboard.data import Sources
from server.dashboard.serve import DashboardServer, start
from server.feature_store import FeatureStore
from server.security.ca import CertificateAuthority, CertSet
from tests.bank.conftest import write_model
from tests.bank.test_review import rows
from tests.consent_helpers import report_consent

OUTPUT = Path(__file__).resolve().parents[1] / "output"  # screenshots: kept as CI artifacts, git-ignored
PARTIES = {"ops": "operator", "platform-1": "platform", "auditor-1": "auditor", "ops-gone": "operator"}


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server(self) -> CertSet:
        return CertSet.in_dir(self.directory)

    def pair(self, name: str) -> tuple[str, str]:
        return str(self.directory / "clients" / f"{name}.crt"), str(self.directory / "clients" / f"{name}.key")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The bank's CA; `ops-gone` is an operator whose certificate was revoked."""
    directory = tmp_path_factory.mktemp("dashboard-pki")
    ca = CertificateAuthority.create(directory)
    for name, role in PARTIES.items():
        ca.issue(name, role)
    ca.revoke("ops-gone", "left the bank")
    return Pki(directory)


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YINQI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("YINQI_DB_URL", raising=False)


@pytest.fixture
def book(tmp_path: Path) -> tuple[str, Path]:
    """A bank on its clock at 2026-04-01 with v1 (PD 3 %) promoted, m1 approved (a line with a
    draw), m2 declined (no turnover)."""
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    store = tmp_path / "store"
    bank = LocalBank(url, store)
    bank.register_model(write_model(tmp_path / "trained" / "v1", 0.03), anchor=True)
    bank.promote("v1")
    bank.set_clock("2026-04-01")
    report_consent(url, ["m1", "m2", "m3"])
    FeatureStore(url).report(
        "platform-1", {"m1": rows([1000, 2000, 3000]), "m2": rows([0, 0, 0]), "m3": rows([500, 800, 900])}
    )
    line = bank.open_line("m1")
    bank.draw(line["account_id"], 50_000)
    bank.score("m2")
    bank.close()
    return url, store


@pytest.fixture
def dashboard(book: tuple[str, Path], pki: Pki) -> Iterator[DashboardServer]:
    url, store = book
    running = start(Sources(url, store), pki.server)
    yield running
    running.stop()


@pytest.fixture
def client(pki: Pki, dashboard: DashboardServer) -> Callable[[str | None], httpx.Client]:
    """`client("ops")`: an HTTPS client trusting the bank's CA, presenting that party's certificate."""
    made: list[httpx.Client] = []

    def make(name: str | None) -> httpx.Client:
        import ssl

        context = ssl.create_default_context(cafile=str(pki.ca))
        if name is not None:
            context.load_cert_chain(*pki.pair(name))
        c = httpx.Client(base_url=dashboard.url, verify=context, timeout=30)
        made.append(c)
        return c

    yield make  # type: ignore[misc]
    for c in made:
        c.close()
