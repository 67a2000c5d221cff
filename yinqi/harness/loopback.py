"""`run_deployed(config) -> Report`: the real ServerApp/ClientApp on a loopback SuperLink.

A harness that plays both sides on one machine (tests, benchmarks, `yinqi train
--deployment`): the bank's SuperLink and every platform's SuperNode run as supervised
processes under one `LocalFederation`. Across organisations each side starts only its own
part (`yinqi bank up`, `yinqi client up`).


One SuperNode per platform file (its `node_config` from `FederationConfig.node_configs()`), each
with a warm ClientApp worker; the bank's ServerApp runs behind `FastPollGrid`. Returns the same
`Report` the simulation engine returns (read from `report.json` in `config.out`), with the
deployment's start-up timings added under `settings["deployment"]`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.ledger import PrivacyLedger
from clients.node.commands import CLIENT_PRELOAD, CLIENT_WARMUP, supernode_argv, worker_argv, worker_ready
from clients.policy import PrivacyPolicy
from federation.flower import base_env
from federation.processes import Proc, Supervisor, log_tail
from federation.waiting import free_port
from server.deploy.appdir import REAL_CLIENTAPP, REAL_SERVERAPP, write_app_dir, write_flwr_home
from server.deploy.control import Control, RunStatus
from server.deploy.errors import DeployError
from server.deploy.launch import FAST_SERVERAPP, add_drops, node_ids_from_logs, run_config_for
from server.deploy.superlink import TlsPaths, superlink_argv, wait_health
from server.fl.config import FederationConfig
from server.fl.report import Report


def run_deployed(
    config: FederationConfig,
    *,
    tls: TlsPaths | None = None,
    keys: list[Path] | None = None,
    warm: bool = True,
    node_poll: float | None = 0.1,
    fast_grid: bool = True,
    workdir: Path | None = None,
    reply_timeout: float = 300.0,
    timeout: float = 900.0,
    keep_logs: bool = False,
    on_ready: Callable[[LocalFederation], object] | None = None,
    policies: PrivacyPolicy | list[PrivacyPolicy] | None = None,
) -> Report:
    """Train `config` (a `server.fl.config.FederationConfig`) on a loopback deployment.

    `policies`: the platforms' privacy policy (one for all, or one each; None: what the run
    asks, `yinqi.harness.platforms.policy_for_run`). Each platform's refusals go to its log and
    to `refusals-<name>.jsonl` in the work directory. Ctrl-C stops the run and raises
    `RunInterrupted` once the report says where it stopped (a run that had finished by then
    stands: `yinqi.harness.interrupt.settle_interrupted`).

    `tls` + `keys` (private key paths, `KEY.pub` beside each): TLS and SuperNode
    authentication, keys registered through the Control API first. `warm`, `node_poll` and
    `fast_grid` switch the speed-ups off one by one (all off = Flower's stock behaviour).
    `reply_timeout`: a platform silent this long in any exchange is dropped from the run
    (SecAgg+ goes on with the others) and named in the report's round. `on_ready(fed)` is
    called once every SuperNode is online (tests use it to inject faults).
    """
    from yinqi.harness.interrupt import settle_interrupted
    from yinqi.harness.platforms import platform_node_configs

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report_path.unlink(missing_ok=True)
    own_dir = workdir is None
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="yinqi-deploy-"))
    engine = "deployment (loopback" + (", TLS + node auth)" if tls else ")")
    failed = True
    refusal_logs = [str(work / f"refusals-{name}.jsonl") for name in config.platform_names]
    node_configs = platform_node_configs(config, policies, refusal_logs)
    fed: LocalFederation | None = None
    try:
        with LocalFederation(
            work, tls=tls, warm=warm, node_poll=node_poll, preload=CLIENT_PRELOAD, warmup=CLIENT_WARMUP if warm else ()
        ) as federation:
            fed = federation
            fed.start_superlink()
            if tls is not None:
                if not keys or len(keys) < len(config.clients):
                    raise DeployError("TLS deployment needs one node key per platform")
                with fed.control() as control:
                    for key, name in zip(keys[: len(config.platform_names)], config.platform_names, strict=True):
                        control.register(Path(str(key) + ".pub"), name)
            prepare_ledgers(node_configs)
            for i, node_config in enumerate(node_configs):
                fed.start_node(config.platform_names[i], node_config, key=keys[i] if tls is not None and keys else None)
            fed.wait_nodes(len(config.clients))
            if on_ready is not None:
                on_ready(fed)
            drops_file = work / "drops.jsonl"
            run_config = run_config_for(
                config,
                engine,
                fast=fast_grid,
                reply_timeout=reply_timeout,
                log_file=fed.supervisor.log_dir / "serverapp.log",
                drops_file=drops_file,
            )
            app_dir = write_app_dir(
                work / "app",
                run_config,
                serverapp=FAST_SERVERAPP if fast_grid else REAL_SERVERAPP,
                clientapp=REAL_CLIENTAPP,
            )
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
    except KeyboardInterrupt:
        run_id = str(fed.run_id) if fed is not None and fed.run_id is not None else None
        return settle_interrupted(report_path, config.rounds, config.ledger_url(), run_id)
    finally:
        if own_dir and not keep_logs and not failed and not os.environ.get("YINQI_DEPLOY_KEEP_LOGS"):
            shutil.rmtree(work, ignore_errors=True)


def prepare_ledgers(node_configs: list[dict[str, Any]]) -> None:
    """Create the privacy-ledger tables before the platforms start.

    On loopback the platforms may share one SQLite ledger file; three processes creating the
    same table at once race ("table privacy_ledger already exists") and the loser's round
    fails. Creating it first, once, removes the race.
    """
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


@dataclass
class LocalFederation:
    """A SuperLink plus SuperNodes under one supervisor, in `workdir`.

    Parameters
    ----------
    workdir : private directory for FLWR_HOME, logs and the app directory.
    tls : serve TLS and require registered SuperNode keys when given.
    warm : SuperNodes with `--isolation process` and a warm worker each (fast); False runs
        Flower's default per-message `flwr-clientapp` subprocesses (the baseline).
    preload : modules each warm worker imports once (the ClientApp and what it needs).
    node_poll : seconds a SuperNode waits between polls when idle (None: Flower's 3 s);
        see `clients.node.supernode`.
    """

    workdir: Path
    tls: TlsPaths | None = None
    warm: bool = True
    preload: tuple[str, ...] = ("clients.app",)
    node_poll: float | None = 0.1
    warmup: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int | None = None
    database: Path | None = None
    supervisor: Supervisor = field(init=False)
    address: str = field(init=False, default="")
    nodes: dict[str, Proc] = field(init=False, default_factory=dict)
    workers: dict[str, Proc] = field(init=False, default_factory=dict)
    timings: dict[str, float] = field(init=False, default_factory=dict)
    run_id: int | None = field(init=False, default=None)  # the run submitted last

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.flwr_home = self.workdir / "flwr-home"
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.workdir / "logs", env=base_env(self.flwr_home))

    # lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> LocalFederation:
        self.supervisor.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.supervisor.__exit__(*exc)

    def close(self) -> None:
        self.supervisor.stop_all()

    # superlink ---------------------------------------------------------------------------
    def start_superlink(self, timeout: float = 30.0) -> str:
        port = self.port or free_port()
        self.address = f"{self.host}:{port}"
        conn: dict[str, Any] = {"address": self.address}
        if self.tls is None:
            conn["insecure"] = True
        else:
            conn["root-certificates"] = str(self.tls.ca)
        write_flwr_home(self.flwr_home, {"yinqi": conn}, default="yinqi")
        t0 = time.monotonic()
        proc = self.supervisor.start("superlink", superlink_argv(self.host, port, self.tls, self.database))
        wait_health(self.address, self.tls.ca if self.tls else None, timeout, proc)
        self.timings["superlink_ready_s"] = time.monotonic() - t0
        return self.address

    def control(self) -> Control:
        return Control(self.address, self.tls.ca if self.tls else None)

    # supernodes --------------------------------------------------------------------------
    def start_node(
        self,
        name: str,
        node_config: dict[str, Any],
        *,
        key: Path | None = None,
        ca: Path | bool | None = True,
        max_wait: float | None = None,
    ) -> Proc:
        """Start one SuperNode (+ its warm worker). `ca=True` uses the federation's CA."""
        ca_path = (self.tls.ca if self.tls else None) if ca is True else (ca or None)
        runtime_port = free_port()
        node = self.supervisor.start(
            f"supernode-{name}",
            supernode_argv(
                self.address,
                runtime_port,
                node_config,
                ca=ca_path,
                key=key,
                warm=self.warm,
                max_wait=max_wait,
                node_poll=self.node_poll,
                config_file=self.workdir / f"node-config-{name}.toml",
            ),
        )
        self.nodes[name] = node
        if self.warm:
            self.workers[name] = self.supervisor.start(
                f"worker-{name}",
                worker_argv(runtime_port, node.pid, self.preload, self.warmup),
                # 2 cores, several platforms: one torch thread each avoids oversubscription
                env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
        return node

    def kill_node(self, name: str) -> None:
        """SIGKILL a SuperNode and its worker (a platform that dies mid-round)."""
        import signal

        for procs in (self.workers, self.nodes):
            proc = procs.get(name)
            if proc is not None:
                self.supervisor.stop(proc, signal.SIGKILL)

    def wait_nodes(self, count: int, timeout: float = 60.0) -> float:
        """Until `count` SuperNodes are online and every warm worker has imported its ClientApp
        (a task that reaches a worker still warming up would wait for it, past reply deadlines)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        with self.control() as control:
            while True:
                online = control.online()
                if len(online) >= count and all(worker_ready(w.log) for w in self.workers.values()):
                    break
                self.supervisor.check()
                if time.monotonic() > deadline:
                    waiting = sorted(n for n, w in self.workers.items() if not worker_ready(w.log))
                    raise DeployError(
                        f"only {len(online)} of {count} SuperNodes came online within {timeout:.0f} s"
                        + (f" (workers still starting: {', '.join(waiting)})" if waiting else "")
                    )
                time.sleep(0.2)
        self.timings["nodes_ready_s"] = time.monotonic() - t0
        return self.timings["nodes_ready_s"]

    # runs --------------------------------------------------------------------------------
    def run(self, app_dir: Path, overrides: dict[str, Any] | None = None, timeout: float = 600.0) -> RunStatus:
        """Submit the app in `app_dir` and wait for the run to finish; returns its RunStatus."""
        with self.control() as control:
            t0 = time.monotonic()
            run_id = control.start_run(app_dir, overrides)
            self.run_id = run_id
            try:
                status = control.wait_run(run_id, timeout, alive=self.supervisor.check)
            except BaseException:
                control.stop_run(run_id)
                raise
            self.timings["run_s"] = time.monotonic() - t0
        return status

    def serverapp_log(self) -> str:
        """The ServerApp's log when the run wrote one (see `fastgrid`), else the SuperLink's."""
        log = self.supervisor.log_dir / "serverapp.log"
        return log_tail(log if log.exists() else self.supervisor.log_dir / "superlink.log", 40)
