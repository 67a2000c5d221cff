"""A small client for the SuperLink's Control API (start runs, list and register nodes).

It talks to the same HTTP Control API as the `flwr` CLI, from Python: no CLI start-up per call
(about a second each) and no dependency on the CLI's typer version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.adapters import flwr as adapter
from server.deploy.errors import DeployError


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    name: str
    status: str  # "registered" | "online" | "offline" | "unregistered"


@dataclass(frozen=True)
class RunStatus:
    run_id: int
    status: str  # "pending" | "starting" | "running" | "finished"
    sub_status: str  # "completed" | "failed" | "stopped" when finished
    details: str


def public_key_bytes(pub_path: Path) -> bytes:
    """A node's OpenSSH EC public key as the bytes the SuperLink registers."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_ssh_public_key(Path(pub_path).read_bytes())
    except FileNotFoundError:
        raise DeployError(f"{pub_path}: public key file not found") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DeployError(f"{pub_path}: not an OpenSSH public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise DeployError(f"{pub_path}: expected an EC (NIST P-384) key, got {type(key).__name__}")
    return adapter.public_key_to_bytes(key)


class Control:
    """Control API of one SuperLink at `address` (host:port), TLS when `ca` is given."""

    def __init__(self, address: str, ca: Path | None = None) -> None:
        self.address = address
        self._client = adapter.ControlClient(address, None if ca is None else Path(ca).read_bytes())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # nodes -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeStatus]:
        return [NodeStatus(node_id, name, status) for node_id, name, status in self._client.list_nodes()]

    def online(self) -> list[NodeStatus]:
        return [n for n in self.nodes() if n.status == "online"]

    def register(self, pub_path: Path, name: str | None = None) -> int:
        key = public_key_bytes(pub_path)
        try:
            return self._client.register_node(key, name or "")
        except Exception as exc:
            raise DeployError(f"{pub_path}: SuperLink {self.address} refused the key: {_reason(exc)}") from None

    def unregister(self, node_id: int) -> None:
        self._client.unregister_node(node_id)

    # runs --------------------------------------------------------------------------------
    def start_run(self, app_dir: Path, overrides: dict[str, Any] | None = None) -> int:
        run_id = self._client.start_run(Path(app_dir), dict(overrides or {}))
        if run_id is None:
            raise DeployError(f"SuperLink {self.address} did not start the run")
        return run_id

    def run_status(self, run_id: int) -> RunStatus:
        return RunStatus(run_id, *self._client.run_status(run_id))

    def wait_run(
        self, run_id: int, timeout: float, poll: float = 0.2, alive: Callable[[], None] | None = None
    ) -> RunStatus:
        """Block until the run finishes; `alive()` may raise when a supervised process died."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.run_status(run_id)
            if status.status == "finished":
                return status
            if alive is not None:
                alive()
            if time.monotonic() > deadline:
                raise DeployError(f"run {run_id} did not finish within {timeout:.0f} s (status {status.status})")
            time.sleep(poll)

    def stop_run(self, run_id: int) -> None:
        try:
            self._client.stop_run(run_id)
        except Exception:
            pass


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
