"""Fixtures for the chain tests: an in-memory embedded EVM with the contracts deployed, an
isolated data dir, and a real Hardhat node (from contracts/node_modules) on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, free_port, require_binary

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
HARDHAT = CONTRACTS / "node_modules" / "hardhat" / "internal" / "cli" / "bootstrap.js"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data dir; no RPC or DB configured from the environment."""
    monkeypatch.setenv("YINQI_DATA_DIR", str(tmp_path / "data"))
    for var in ("YINQI_CHAIN_RPC", "YINQI_DB_URL", "YINQI_CHAIN_PERSIST", "YINQI_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


@pytest.fixture(scope="session")
def _deployed(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from contracts.client import open_chain

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YINQI_DATA_DIR", str(tmp_path_factory.mktemp("deploy")))
        mp.delenv("YINQI_CHAIN_RPC", raising=False)
        return open_chain(persist=False)


@pytest.fixture
def chain(_deployed, data_dir: Path):  # type: ignore[no-untyped-def]
    """An in-memory embedded chain with both contracts deployed, as fresh as just after deployment
    (deployed once per session, rolled back to that snapshot after each test)."""
    snapshot = _deployed.w3.testing.snapshot()
    try:
        yield _deployed
    finally:
        _deployed.w3.testing.revert(snapshot)


class HardhatNode:
    """A Hardhat 2 JSON-RPC node on a loopback port; stop() / start() simulate an outage."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        node = require_binary("node")
        env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        self.proc = subprocess.Popen(
            [node, str(HARDHAT), "node", "--hostname", "127.0.0.1", "--port", str(self.port)],
            cwd=CONTRACTS,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hardhat node exited with {self.proc.returncode}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError("hardhat node did not answer within 30 s")

    def ready(self) -> bool:
        import json
        import urllib.request

        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=1) as resp:
                return b"result" in resp.read()
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def hardhat() -> Iterator[HardhatNode]:
    """A real external Ethereum node (Hardhat 2 from contracts/package.json)."""
    if not HARDHAT.exists():
        message = "contracts/node_modules/hardhat missing (run `make contracts`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    node = HardhatNode(free_port())
    node.start()
    try:
        yield node
    finally:
        node.stop()
