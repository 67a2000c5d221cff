"""`run_federation(config) -> Report`: one federated run on the Simulation Engine.

The bank's ServerApp (`server.fl.app.app`) and the platforms' ClientApp (`clients.app.app`) run
unchanged; `server.deploy.run_deployed(config)` runs the same two apps on a loopback SuperLink
and SuperNodes and returns the same `Report`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from clients.policy import PrivacyPolicy
from server.fl.config import FederationConfig
from server.fl.report import Report

REPORT_FILE = "report.json"


def quiet_flower(level: int = logging.WARNING) -> None:
    """Flower logs every SecAgg+ stage at DEBUG (and sets its logger to DEBUG on import):
    keep the console to warnings; YINQI_FL_LOG=INFO/DEBUG shows more."""
    import flwr.supercore.logger  # noqa: F401  (sets the level on import; override after)

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    chosen = os.environ.get("YINQI_FL_LOG", "").upper()
    flower = logging.getLogger("flwr")
    flower.setLevel(getattr(logging, chosen, level) if chosen else level)
    flower.propagate = False


def run_federation(
    config: FederationConfig,
    *,
    backend: str = "inprocess",
    workers: int = 2,
    policies: PrivacyPolicy | list[PrivacyPolicy] | None = None,
    client_apps: dict[int, Any] | None = None,
) -> Report:
    """Train on the Simulation Engine; the model and `report.json` land in `config.out`.

    `policies`: the simulated platforms' privacy policy (one for all, or one each); None lets
    them allow exactly what `config` asks (`yinqi.harness.platforms.policy_for_run`).
    `client_apps`: a ClientApp of its own for some platforms (by index), e.g. a hostile one.
    Ctrl-C raises `RunInterrupted` (exit code 130) after the report says where the run stopped,
    unless the run had finished by then (`yinqi.harness.interrupt.settle_interrupted`).
    """
    quiet_flower()
    import torch

    torch.set_num_threads(1)  # many tiny models on 2 shared cores: threads only add contention
    from clients.app import app as client_app
    from server.fl.app import app as server_app
    from server.fl.errors import RunInterrupted
    from yinqi.harness.interrupt import settle_interrupted
    from yinqi.harness.platforms import platform_node_configs
    from yinqi.harness.simulation import simulate

    config.out.mkdir(parents=True, exist_ok=True)
    report_path = config.out / REPORT_FILE
    report_path.unlink(missing_ok=True)
    run_config = {**config.to_run_config(), "engine": f"simulation ({backend})"}
    nodes = platform_node_configs(config, policies)
    try:
        simulate(server_app, client_app, run_config, nodes, backend=backend, workers=workers, client_apps=client_apps)
    except RunInterrupted as exc:
        return settle_interrupted(report_path, config.rounds, config.ledger_url(), exc.run_id)
    return Report.read(report_path)
