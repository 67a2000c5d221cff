"""Fixtures for the bank services: one database per test on SQLite and on PostgreSQL, model
directories whose default probability is known exactly (zero weights, a chosen bias), the bank's
own CA with a certificate per party, and a running bank speaking mutual TLS."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from federation.preprocess import compute_stats
from proto.channel import ClientTls
from server.security.ca import CertificateAuthority, CertSet

FEATURES = pd.DataFrame(
    {
        "category": ["food", "toys", "food", "books"],
        "amount": [1000.0, 2500.0, 400.0, 3200.0],
        "count": [10, 25, 4, 30],
        "avg_rating": [4.5, 4.0, 3.5, 4.8],
        "inventory_turnover": [2.0, 3.0, 1.5, 4.0],
        "growth": [0.0, 0.1, -0.2, 0.05],
        "first_month": [1, 0, 0, 0],
        "past_defaults": [0, 0, 1, 0],
    }
)


def training_report(seed: int = 0) -> dict:
    """A run report's aggregates of 2,000 training rows shaped like the test model's features,
    every score in bin 30 (PD 0.03, what the test model gives everyone)."""
    rng = np.random.default_rng(seed)
    n = 2000
    frame = pd.DataFrame(
        {
            "category": rng.choice(["food", "toys", "books"], n),
            "amount": rng.uniform(500, 1500, n),
            "count": rng.integers(5, 16, n).astype(float),
            "avg_rating": rng.uniform(3.5, 5.0, n),
            "inventory_turnover": rng.uniform(1.0, 4.0, n),
            "growth": rng.uniform(-0.1, 0.1, n),
            "first_month": np.zeros(n),
            "past_defaults": np.zeros(n),
        }
    )
    return {"agreement": {"stats": compute_stats(frame).to_dict(), "scores": {"bins": 1000, "counts": {"30": n}}}}


def merchant_rows(amounts: list[float], category: str = "food") -> list[dict]:
    """Feature rows of one merchant, one per month, with the given monthly amounts."""
    return [
        {
            "month": f"2026-{i + 1:02d}",
            "category": category,
            "amount": amount,
            "count": 10,
            "avg_rating": 4.5,
            "inventory_turnover": 2.0,
            "growth": 0.0,
            "first_month": int(i == 0),
            "past_defaults": 0,
        }
        for i, amount in enumerate(amounts)
    ]


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YINQI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("YINQI_DB_URL", raising=False)
    monkeypatch.delenv("YINQI_CREDIT_POLICY", raising=False)
    monkeypatch.delenv("YINQI_CONSENT_DB", raising=False)


DEFAULT_REPORT = {
    "rounds": [
        {"round": 1, "federated_auc": 0.70, "federated_ks": 0.30, "dropped": []},
        {"round": 2, "federated_auc": 0.75, "federated_ks": 0.35, "dropped": ["platform_3"]},
    ],
    "final": {"federated_auc": 0.75, "federated_ks": 0.35},
    "participants": ["platform_1", "platform_2", "platform_3"],
    "epsilon": {"platform_1": 2.5, "platform_2": 2.75, "platform_3": 3.0},
}


def write_model(out: Path, pd_value: float, report: dict | None = None) -> Path:
    """A model directory at `out` that gives every merchant default probability `pd_value`."""
    import torch

    from federation.model import build_model, save_model, write_report
    from federation.preprocess import Encoder, compute_stats

    encoder = Encoder.from_stats(compute_stats(FEATURES))
    model = build_model(encoder.n_features, "logistic")
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(math.log(pd_value / (1 - pd_value)))
    save_model(out, model, encoder, {"architecture": "logistic"})
    write_report(out, report or DEFAULT_REPORT)
    return out


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """`make_model(pd, name)` -> a model directory that gives every merchant default probability `pd`."""

    def make(pd_value: float, name: str | None = None, report: dict | None = None) -> Path:
        return write_model(tmp_path / "trained" / (name or f"pd{pd_value}"), pd_value, report)

    return make


# ----- the bank's own CA, parties and a running bank (mutual TLS) ------------------------------
PARTIES = {
    "ops": "operator",
    "platform-1": "platform",
    "platform-2": "platform",
    "monitor-1": "iot-monitor",
    "auditor-1": "auditor",
}


@dataclass(frozen=True)
class Pki:
    """A CA made by `server.security.ca` with one client certificate per party in PARTIES."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server(self) -> CertSet:
        return CertSet.in_dir(self.directory)

    def cert(self, name: str) -> Path:
        return self.directory / "clients" / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / "clients" / f"{name}.key"

    def tls(self, name: str | None = None) -> ClientTls:
        """This party's mutual TLS settings (None: only the CA, as an outsider holds it)."""
        return ClientTls(self.ca) if name is None else ClientTls(self.ca, self.cert(name), self.key(name))


def make_pki(directory: Path) -> Pki:
    ca = CertificateAuthority.create(directory)
    for name, role in PARTIES.items():
        ca.issue(name, role)
    return Pki(directory)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA for the session (tests that revoke make their own with `make_pki`)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def report_features(url: str, merchants: dict[str, list[dict]], platform: str = "platform-1") -> int:
    """Store, in the bank's database, feature rows as `platform` would report them."""
    from server.feature_store import FeatureStore

    return FeatureStore(url).report(platform, merchants)


@pytest.fixture
def bank_db(tmp_path: Path, make_model: Callable[..., Path]) -> str:
    """A bank with v1 (PD 3 %) promoted; platform-1 reported consent and features for m1 and m2
    (monthly sales 1,000 / 2,000 / 3,000 yuan) and features without consent for m3."""
    from server.credit.promotion import promote
    from server.registry import Registry
    from tests.consent_helpers import report_consent

    url = f"sqlite:///{tmp_path / 'bank.db'}"
    registry = Registry(url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(url, ["m1", "m2"])
    rows = merchant_rows([1000.0, 2000.0, 3000.0])
    report_features(url, {"m1": rows, "m2": rows, "m3": rows})
    return url


@pytest.fixture
def running_bank(bank_db: str, pki: Pki, tmp_path: Path) -> Iterator[str]:
    """The bank's services on a free loopback port with mutual TLS (the session's CA)."""
    from server.grpc_app import build_server
    from tests.conftest import free_port

    server = build_server(f"127.0.0.1:{free_port()}", bank_db, pki.server, tmp_path / "store")
    server.start()
    try:
        yield f"127.0.0.1:{server.bound_port}"
    finally:
        server.stop(grace=None)
