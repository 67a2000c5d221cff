"""`run_deployed(config) -> Report`: the real ServerApp/ClientApp on a loopback SuperLink.

One SuperNode per platform file (its `node_config` from `FederationConfig.node_configs()`), each
with a warm ClientApp worker; the bank's ServerApp runs behind `FastPollGrid`. Returns the same
`Report` the simulation engine returns (read from `report.json` in `config.out`), with the
deployment's start-up timings added under `settings["deployment"]`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from server.deploy.appdir import REAL_CLIENTAPP, REAL_SERVERAPP, write_app_dir
from server.deploy.cluster import LocalFederation, TlsPaths
from server.deploy.errors import DeployError
from server.deploy.fastgrid import DROPS_KEY, INNER_KEY, LOG_KEY, TIMEOUT_KEY

FAST_SERVERAPP = "server.deploy.fastgrid:app"
# What a platform's warm worker imports once, before any message arrives.
CLIENT_PRELOAD = ("clients.app", "clients.train", "clients.data", "clients.ledger", "federation.model",
                  "federation.privacy", "opacus")
CLIENT_WARMUP = ("server.deploy.warmup:torch_dp",)


def run_config_for(config: Any, engine: str, serverapp: str = REAL_SERVERAPP, fast: bool = True,
                   reply_timeout: float | None = None, log_file: Path | None = None,
                   drops_file: Path | None = None) -> dict[str, Any]:
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


def add_drops(report, drops_file: Path, names: dict[int, str]) -> None:  # type: ignore[no-untyped-def]
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


def run_deployed(config: Any, *, tls: TlsPaths | None = None, keys: list[Path] | None = None,
                 warm: bool = True, node_poll: float | None = 0.1, fast_grid: bool = True,
                 workdir: Path | None = None, reply_timeout: float = 300.0,
                 timeout: float = 900.0, keep_logs: bool = False, on_ready=None):  # type: ignore[no-untyped-def]
    """Train `config` (a `server.fl.config.FederationConfig`) on a loopback deployment.

    `tls` + `keys` (private key paths, `KEY.pub` beside each): TLS and SuperNode
    authentication, keys registered through the Control API first. `warm`, `node_poll` and
    `fast_grid` switch the speed-ups off one by one (all off = Flower's stock behaviour).
    `reply_timeout`: a platform silent this long in any exchange is dropped from the run
    (SecAgg+ goes on with the others) and named in the report's round. `on_ready(fed)` is
    called once every SuperNode is online (tests use it to inject faults).
    """
    from server.fl.report import Report

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report_path.unlink(missing_ok=True)
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="yinqi-deploy-")) if own_dir else Path(workdir)
    engine = "deployment (loopback" + (", TLS + node auth)" if tls else ")")
    failed = True
    try:
        with LocalFederation(work, tls=tls, warm=warm, node_poll=node_poll,
                             preload=CLIENT_PRELOAD, warmup=CLIENT_WARMUP if warm else ()) as fed:
            fed.start_superlink()
            if tls is not None:
                if not keys or len(keys) < len(config.clients):
                    raise DeployError("TLS deployment needs one node key per platform")
                with fed.control() as control:
                    for key, name in zip(keys, config.platform_names):
                        control.register(Path(str(key) + ".pub"), name)
            prepare_ledgers(config.node_configs())
            for i, node_config in enumerate(config.node_configs()):
                fed.start_node(config.platform_names[i], node_config,
                               key=keys[i] if tls is not None and keys else None)
            fed.wait_nodes(len(config.clients))
            if on_ready is not None:
                on_ready(fed)
            drops_file = work / "drops.jsonl"
            run_config = run_config_for(config, engine, fast=fast_grid, reply_timeout=reply_timeout,
                                        log_file=fed.supervisor.log_dir / "serverapp.log",
                                        drops_file=drops_file)
            app_dir = write_app_dir(work / "app", run_config,
                                    serverapp=FAST_SERVERAPP if fast_grid else REAL_SERVERAPP,
                                    clientapp=REAL_CLIENTAPP)
            status = fed.run(app_dir, timeout=timeout)
            if status.sub_status != "completed" or not report_path.exists():
                raise DeployError(
                    f"federated run {status.run_id} {status.sub_status or status.status}"
                    f"{': ' + status.details if status.details else ''}; ServerApp log "
                    f"{fed.supervisor.log_dir / 'serverapp.log'}:\n{_serverapp_error(fed)}"
                )
            timings = dict(fed.timings)
            names = node_ids_from_logs(fed.supervisor.log_dir)
        report = Report.read(report_path)
        add_drops(report, drops_file, names)
        report.settings["deployment"] = {k: round(v, 3) for k, v in timings.items()}
        report.write(report_path)
        failed = False
        return report
    finally:
        if own_dir and not keep_logs and not failed and not os.environ.get("YINQI_DEPLOY_KEEP_LOGS"):
            shutil.rmtree(work, ignore_errors=True)


def prepare_ledgers(node_configs: list[dict[str, Any]]) -> None:
    """Create the privacy-ledger tables before the platforms start.

    On loopback the platforms may share one SQLite ledger file; three processes creating the
    same table at once race ("table privacy_ledger already exists") and the loser's round
    fails. Creating it first, once, removes the race.
    """
    try:
        from clients.ledger import PrivacyLedger
    except ImportError:
        return
    for url in sorted({str(nc["ledger-db"]) for nc in node_configs if nc.get("ledger-db")}):
        PrivacyLedger(url)


def _serverapp_error(fed: LocalFederation) -> str:
    """The most telling lines of the SuperLink log (ServerApp traceback or error lines)."""
    log = fed.supervisor.log_dir / "serverapp.log"
    if not log.exists():
        log = fed.supervisor.log_dir / "superlink.log"
    text = log.read_text(errors="replace").splitlines()
    errors = [line for line in text if "Error" in line or "error" in line or "ERROR" in line]
    return "\n".join((errors or text)[-12:])
