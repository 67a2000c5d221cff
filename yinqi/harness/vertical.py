"""Vertical runs with both sides on one machine: Flower's simulation engine or a loopback
deployment (real SuperLink + the platform's SuperNode), and in-process PSI for tests/demo.

`simulate_vertical(cfg, node)` runs `server.vertical.app:app` against one simulated SuperNode
with the platform's real `node_config`; `deploy_vertical(cfg, node, ...)` runs the same two
apps on a loopback SuperLink (TLS and node authentication when given) with a warm ClientApp
worker. Both return the report the ServerApp wrote to `cfg.out`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from federation.vertical.config import PlatformNodeConfig, VerticalConfig

SERVERAPP = "server.vertical.app:app"
CLIENTAPP = "clients.vertical.app:app"
CLIENT_PRELOAD = ("clients.vertical.app", "clients.vertical.party", "federation.vertical.steps", "torch")


def platform_node_config(node: PlatformNodeConfig) -> dict[str, Any]:
    """The platform's node config as its own SuperNode would have it: its vertical settings plus
    a privacy policy that approves the vertical ClientApp (a platform's default policy approves
    only the horizontal one), with the app's identity pinned for the warm worker's check."""
    from clients.node.approval import IDENTITIES_KEY, pinned_identities
    from clients.policy import PrivacyPolicy

    policy = PrivacyPolicy(components=(CLIENTAPP,), source="<harness: the vertical ClientApp approved>")
    return {
        **node.to_node_config(),
        **policy.to_node_config(),
        IDENTITIES_KEY: json.dumps(pinned_identities(policy), sort_keys=True),
    }


def _report(cfg: VerticalConfig) -> dict[str, Any]:
    return dict(json.loads((cfg.out / "report.json").read_text()))


def simulate_vertical(
    cfg: VerticalConfig, node: PlatformNodeConfig, *, others: tuple[PlatformNodeConfig, ...] = ()
) -> dict[str, Any]:
    """One vertical run on Flower's simulation runtime (in-process nodes); `others`: more
    platforms' nodes connected at the same time (the bank trains with the one that holds the
    PSI session)."""
    from clients.vertical.app import app as client_app
    from server.vertical.app import app as server_app
    from yinqi.harness.federated import quiet_flower
    from yinqi.harness.simulation import simulate

    quiet_flower()
    import torch

    torch.set_num_threads(1)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "report.json").unlink(missing_ok=True)
    run_config = {**cfg.to_run_config(), "engine": "simulation"}
    nodes = [node.to_node_config(), *(other.to_node_config() for other in others)]
    simulate(server_app, client_app, run_config, nodes, workers=1)
    return _report(cfg)


def deploy_vertical(
    cfg: VerticalConfig,
    node: PlatformNodeConfig,
    *,
    tls: Any = None,
    key: Path | None = None,
    workdir: Path | None = None,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """The same run on a loopback SuperLink and a SuperNode for the platform (separate
    processes); `tls` (`server.deploy.superlink.TlsPaths`) + `key`: TLS and node auth."""
    from server.deploy.appdir import write_app_dir
    from server.deploy.errors import DeployError
    from server.deploy.launch import FAST_SERVERAPP, run_config_for
    from yinqi.harness.loopback import LocalFederation

    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "report.json").unlink(missing_ok=True)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="yinqi-vertical-")) if own else Path(workdir)  # type: ignore[arg-type]
    ok = False
    try:
        with LocalFederation(work, tls=tls, warm=True, preload=CLIENT_PRELOAD) as fed:
            fed.start_superlink()
            if tls is not None:
                if key is None:
                    raise DeployError("a TLS deployment needs the platform's node key")
                with fed.control() as control:
                    control.register(Path(str(key) + ".pub"), node.platform_name)
            fed.start_node(node.platform_name, platform_node_config(node), key=key if tls is not None else None)
            fed.wait_nodes(1)
            run_config = run_config_for(
                _Flat(cfg),
                "deployment (loopback)",
                serverapp=SERVERAPP,
                log_file=fed.supervisor.log_dir / "serverapp.log",
            )
            app_dir = write_app_dir(
                work / "app", run_config, serverapp=FAST_SERVERAPP, clientapp=CLIENTAPP, name="yinqi-vertical"
            )
            status = fed.run(app_dir, timeout=timeout)
            if status.sub_status != "completed" or not (cfg.out / "report.json").exists():
                raise DeployError(
                    f"vertical run {status.run_id} {status.sub_status or status.status}: {status.details}\n{fed.serverapp_log()}"
                )
        ok = True
        return _report(cfg)
    finally:
        if own and ok:
            shutil.rmtree(work, ignore_errors=True)


class _Flat:
    """Adapter: `run_config_for` wants an object with `to_run_config()`."""

    def __init__(self, cfg: VerticalConfig) -> None:
        self.cfg = cfg

    def to_run_config(self) -> dict[str, Any]:
        return self.cfg.to_run_config()


def train_central(
    x: Any, y: Any, *, epochs: int, batch_size: int, lr: float, hidden: int = 16, momentum: float = 0.9, seed: int = 0
) -> Any:
    """A plain MLP on rows one party (or a pooled table) holds: the baselines vertical
    training is measured against (same optimiser, epochs and batch size)."""
    import numpy as np
    import torch

    from federation.vertical.model import mlp

    model = mlp(x.shape[1], 1, hidden, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    xs, ys = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(np.asarray(y), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(len(xs)))
        for start in range(0, len(xs), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xs[batch]).reshape(-1), ys[batch])
            loss.backward()
            optimizer.step()
    return model
