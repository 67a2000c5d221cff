"""`run_federation(config) -> Report`: one federated run on the Simulation Engine.

The bank's ServerApp (`server.fl.app.app`) and the platforms' ClientApp (`clients.app.app`) run
unchanged; `server.deploy.run_deployed(config)` runs the same two apps on a loopback SuperLink
and SuperNodes and returns the same `Report`.
"""

from __future__ import annotations

import logging
import os

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


def run_federation(config: FederationConfig, *, backend: str = "inprocess", workers: int = 2) -> Report:
    """Train on the Simulation Engine; the model and `report.json` land in `config.out`."""
    quiet_flower()
    import torch

    torch.set_num_threads(1)  # many tiny models on 2 shared cores: threads only add contention
    from clients.app import app as client_app
    from server.fl.app import app as server_app
    from yinqi.harness.simulation import simulate

    config.out.mkdir(parents=True, exist_ok=True)
    report_path = config.out / REPORT_FILE
    report_path.unlink(missing_ok=True)
    run_config = {**config.to_run_config(), "engine": f"simulation ({backend})"}
    simulate(server_app, client_app, run_config, config.node_configs(), backend=backend, workers=workers)
    return Report.read(report_path)
