"""How the bank submits the real ServerApp to a SuperLink: the run config and drop reports.

Used by `yinqi bank train` (a long-lived SuperLink) and by the loopback harness alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.deploy.appdir import REAL_SERVERAPP
from server.deploy.fastgrid import DROPS_KEY, INNER_KEY, LOG_KEY, TIMEOUT_KEY

FAST_SERVERAPP = "server.deploy.fastgrid:app"


def run_config_for(
    config: Any,
    engine: str,
    serverapp: str = REAL_SERVERAPP,
    fast: bool = True,
    reply_timeout: float | None = None,
    log_file: Path | None = None,
    drops_file: Path | None = None,
) -> dict[str, Any]:
    run_config = {**config.to_run_config(), "engine": engine}
    if fast:
        run_config[INNER_KEY] = serverapp
        if reply_timeout:
            run_config[TIMEOUT_KEY] = float(reply_timeout)
        if log_file is not None:
            run_config[LOG_KEY] = str(log_file)
        if drops_file is not None:
            run_config[DROPS_KEY] = str(drops_file)
    return run_config


def node_ids_from_logs(log_dir: Path) -> dict[int, str]:
    """node id -> platform name, from each SuperNode's log line `SuperNode ID: N`."""
    import re

    names: dict[int, str] = {}
    for log in Path(log_dir).glob("supernode-*.log"):
        match = re.search(r"SuperNode ID: (\d+)", log.read_text(errors="replace"))
        if match:
            names[int(match.group(1))] = log.stem.removeprefix("supernode-")
    return names


def add_drops(report: Any, drops_file: Path, names: dict[int, str]) -> None:
    """Name, in each round of the report, the platforms that stopped answering."""
    import json

    if not drops_file.exists():
        return
    for line in drops_file.read_text().splitlines():
        drop = json.loads(line)
        name = names.get(int(drop["node_id"]), f"node {drop['node_id']}")
        text = f"{name}: no reply within {drop['waited']:.0f} s (dropped for the rest of the run)"
        for record in report.rounds:
            if record.round == drop["round"] and not any(name in d for d in record.dropped):
                record.dropped.append(text)
