"""A small client for the SuperLink's Control API (start runs, list and register nodes).

It talks to the same HTTP Control API as the `flwr` CLI, from Python: no CLI start-up per call
(about a second each) and no dependency on the CLI's typer version.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes

    try:
        key = serialization.load_ssh_public_key(Path(pub_path).read_bytes())
    except FileNotFoundError:
        raise DeployError(f"{pub_path}: public key file not found") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DeployError(f"{pub_path}: not an OpenSSH public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise DeployError(f"{pub_path}: expected an EC (NIST P-384) key, got {type(key).__name__}")
    return public_key_to_bytes(key)


class Control:
    """Control API of one SuperLink at `address` (host:port), TLS when `ca` is given."""

    def __init__(self, address: str, ca: Path | None = None) -> None:
        from flwr.supercore.control import ControlHttpClient
        from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor

        self.address = address
        self._client = ControlHttpClient.from_server_address(
            server_address=address,
            insecure=ca is None,
            root_certificates=None if ca is None else Path(ca).read_bytes(),
            interceptors=[RuntimeVersionHttpInterceptor(component_name="flwr CLI")],
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Control":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # nodes -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeStatus]:
        from flwr.proto.control_pb2 import ListNodesRequest  # pylint: disable=E0611

        res = self._client.ListNodes(ListNodesRequest())
        return [NodeStatus(n.node_id, n.name, n.status) for n in res.nodes_info]

    def online(self) -> list[NodeStatus]:
        return [n for n in self.nodes() if n.status == "online"]

    def register(self, pub_path: Path, name: str | None = None) -> int:
        from flwr.proto.control_pb2 import RegisterNodeRequest  # pylint: disable=E0611

        key = public_key_bytes(pub_path)
        try:
            res = self._client.RegisterNode(RegisterNodeRequest(public_key=key, name=name or ""))
        except Exception as exc:  # noqa: BLE001 - the SuperLink's refusal, as one line
            raise DeployError(f"{pub_path}: SuperLink {self.address} refused the key: {_reason(exc)}") from None
        return int(res.node_id)

    def unregister(self, node_id: int) -> None:
        from flwr.proto.control_pb2 import UnregisterNodeRequest  # pylint: disable=E0611

        self._client.UnregisterNode(UnregisterNodeRequest(node_id=node_id))

    # runs --------------------------------------------------------------------------------
    def start_run(self, app_dir: Path, overrides: dict[str, Any] | None = None) -> int:
        from flwr.cli.build import build_fab_from_disk
        from flwr.common.serde import fab_to_proto, user_config_to_proto
        from flwr.proto.control_pb2 import StartRunRequest  # pylint: disable=E0611
        from flwr.supercore.fab import Fab

        import warnings

        with warnings.catch_warnings():  # pathspec's deprecation noise inside Flower's builder
            warnings.simplefilter("ignore", DeprecationWarning)
            fab_bytes = build_fab_from_disk(Path(app_dir))
        fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
        req = StartRunRequest(
            fab=fab_to_proto(fab), override_config=user_config_to_proto(dict(overrides or {}))
        )
        res = self._client.StartRun(req)
        if not res.HasField("run_id"):
            raise DeployError(f"SuperLink {self.address} did not start the run")
        return int(res.run_id)

    def run_status(self, run_id: int) -> RunStatus:
        from flwr.proto.control_pb2 import ListRunsRequest  # pylint: disable=E0611

        res = self._client.ListRuns(ListRunsRequest(run_id=run_id))
        run = res.run_dict[run_id]
        return RunStatus(run_id, run.status.status, run.status.sub_status, run.status.details)

    def wait_run(self, run_id: int, timeout: float, poll: float = 0.2, alive=None) -> RunStatus:
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
        from flwr.proto.control_pb2 import StopRunRequest  # pylint: disable=E0611

        try:
            self._client.StopRun(StopRunRequest(run_id=run_id))
        except Exception:  # noqa: BLE001 - best effort during shutdown
            pass


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
