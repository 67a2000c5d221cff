"""The bank and the platform as separate processes, over TLS: PSI, training, scoring.

PSI and scoring run through the `yinqi` CLI (a bank process and a platform process, mutual
TLS with role certificates); training runs on a loopback SuperLink with TLS and SuperNode
authentication, the platform's ClientApp in its own SuperNode process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.consent import ConsentBook
from tests.vertical.conftest import Pki

pytestmark = [pytest.mark.slow, pytest.mark.deployment]
YINQI = [str(Path(sys.executable).parent / "yinqi")]


def _run(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*YINQI, *args], capture_output=True, text=True, env=env, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"yinqi {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


class Service:
    """A `yinqi ... serve` process; its port comes from --port-file (polled, not slept)."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str], name: str) -> None:
        self.port_file = workdir / f"{name}.port"
        self.log = (workdir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [*YINQI, *args, "--address", "127.0.0.1:0", "--port-file", str(self.port_file)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            assert self.proc.poll() is None, (workdir / f"{name}.log").read_text()
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.1)
        self.address = f"127.0.0.1:{self.port_file.read_text().strip()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {**os.environ, "YINQI_DATA_DIR": str(tmp_path / "data"), "FLWR_TELEMETRY_ENABLED": "0"}


def test_psi_training_and_scoring_as_separate_processes_over_tls(pki: Pki, tmp_path: Path, env: dict[str, str]) -> None:
    from clients.node.keys import make_node_key
    from federation.vertical.config import PlatformNodeConfig, VerticalConfig
    from server.deploy.superlink import TlsPaths
    from server.security.ca import make_certs
    from yinqi.harness.vertical import deploy_vertical

    bank_db, platform_db = f"sqlite:///{tmp_path / 'bank.db'}", f"sqlite:///{tmp_path / 'platform.db'}"
    consent_db = f"sqlite:///{tmp_path / 'consent.db'}"
    _run(
        "vertical",
        "synth",
        "--out",
        str(tmp_path / "d"),
        "--bank-merchants",
        "600",
        "--platform-merchants",
        "600",
        "--seed",
        "2",
        env=env,
    )
    bank_file, platform_file = tmp_path / "d" / "bank.csv", tmp_path / "d" / "platform.csv"

    # 1. PSI: the bank's service and the platform's client, each its own process, mutual TLS.
    bank_tls = ["--ca", str(pki.ca), "--cert", str(pki.bank_server.cert), "--key", str(pki.bank_server.key)]
    psi = Service(["psi", "serve", "--data", str(bank_file), "--bank-db", bank_db, *bank_tls], tmp_path, env, "psi")
    try:
        platform_tls = ["--ca", str(pki.ca), "--cert", str(pki.platform.cert), "--key", str(pki.platform.key)]
        done = _run(
            "psi",
            "run",
            "--bank",
            psi.address,
            "--data",
            str(platform_file),
            "--platform-db",
            platform_db,
            *platform_tls,
            "--json",
            env=env,
        )
        outcome = json.loads(done.stdout)
        assert outcome["cardinality"] == 420  # 70 % of the bank's 600
        auditor_tls = ["--ca", str(pki.ca), "--cert", str(pki.auditor.cert), "--key", str(pki.auditor.key)]
        refused = _run(
            "psi",
            "run",
            "--bank",
            psi.address,
            "--data",
            str(platform_file),
            "--platform-db",
            platform_db,
            *auditor_tls,
            env=env,
            check=False,
        )
        assert refused.returncode == 2
        assert "auditor-1 (role auditor) may not run PSI with the bank" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        psi.stop()
    shown = json.loads(_run("psi", "show", outcome["session_id"], "--bank-db", bank_db, "--json", env=env).stdout)
    assert (shown["platform"], shown["cardinality"]) == ("platform-a", 420)

    # 2. Training: SuperLink with TLS + node authentication, the platform's SuperNode process.
    flower = make_certs(tmp_path / "flower-certs")
    key, _pub = make_node_key(tmp_path / "keys" / "platform-a")
    cfg = VerticalConfig(
        bank_data=bank_file,
        session=outcome["session_id"],
        out=tmp_path / "top",
        bank_db=bank_db,
        epochs=2,
        batch_size=128,
    )
    node = PlatformNodeConfig(
        data_path=platform_file, platform_name="platform-a", platform_db=platform_db, model_dir=tmp_path / "bottom"
    )
    report = deploy_vertical(cfg, node, tls=TlsPaths(flower.ca, flower.cert, flower.key), key=key)
    assert report["status"] == "completed" and report["platform"] == "platform-a"
    assert (tmp_path / "bottom" / outcome["session_id"] / "bottom.pt").exists()

    # 3. Scoring: the platform's embedding service and the bank's CLI, separate processes, mTLS.
    registered = json.loads(
        _run(
            "vertical",
            "register",
            str(tmp_path / "top"),
            "--bank-db",
            bank_db,
            "--store",
            str(tmp_path / "store"),
            "--json",
            env=env,
        ).stdout
    )
    assert registered["sha256"] == report["version_hash"]
    session_ids = json.loads(_run("psi", "show", outcome["session_id"], "--bank-db", bank_db, "--json", env=env).stdout)
    assert session_ids["cardinality"] == 420
    from server.vertical.store import PsiStore

    shared = PsiStore(bank_db).get(outcome["session_id"]).ids
    consented, unconsented = shared[0], shared[1]
    ConsentBook(consent_db).grant([consented])
    serve_tls = ["--ca", str(pki.ca), "--cert", str(pki.platform_server.cert), "--key", str(pki.platform_server.key)]
    embedding = Service(
        [
            "vertical",
            "serve",
            "--model-dir",
            str(tmp_path / "bottom" / outcome["session_id"]),
            "--data",
            str(platform_file),
            "--consent-db",
            consent_db,
            "--name",
            "platform-a",
            *serve_tls,
        ],
        tmp_path,
        env,
        "embedding",
    )
    try:
        score_args = [
            "vertical",
            "score",
            "--platform",
            embedding.address,
            "--bank-data",
            str(bank_file),
            "--bank-db",
            bank_db,
            "--store",
            str(tmp_path / "store"),
            "--ca",
            str(pki.ca),
            "--cert",
            str(pki.operator.cert),
            "--key",
            str(pki.operator.key),
        ]
        scored = json.loads(_run(*score_args[:2], consented, *score_args[2:], "--json", env=env).stdout)
        assert 0 < scored["default_probability"] < 1 and scored["model_sha256"] == report["version_hash"]
        refused = _run(*score_args[:2], unconsented, *score_args[2:], env=env, check=False)
        assert refused.returncode == 2
        assert f"merchant '{unconsented}' has no consent in force at platform platform-a" in refused.stderr
    finally:
        embedding.stop()
    log = (tmp_path / "embedding.log").read_text()
    assert f"embed '{consented}' for bank-ops: answered" in log
    assert f"embed '{unconsented}' for bank-ops refused" in log
