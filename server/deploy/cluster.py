"""A SuperLink and its SuperNodes as supervised local processes (loopback or one machine each).

`LocalFederation` starts `flower-superlink` (insecure, or TLS + SuperNode authentication) and
SuperNodes, each SuperNode with `--isolation process` and a warm ClientApp worker
(`server.deploy.worker`) instead of Flower's per-message `flwr-clientapp` start-up. Readiness is
polled (`/health`, Control API node list), never slept. Everything stops on exit, error or
Ctrl-C.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.deploy.errors import DeployError
from server.deploy.procs import Proc, Supervisor, flwr_bin, log_tail

EXIT_AUTH_REFUSED = 305  # flower-supernode's exit code when the SuperLink rejects its key


@dataclass(frozen=True)
class TlsPaths:
    """CA, server certificate and key the SuperLink serves TLS with."""

    ca: Path
    cert: Path
    key: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(flwr_home: Path) -> dict[str, str]:
    """Environment of every Flower process: private FLWR_HOME, no telemetry, fast task polls."""
    return {
        "FLWR_HOME": str(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        # Documented SuperExec knob: how often it asks for a task to launch (default 1 s).
        "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.05",
        "PYTHONUNBUFFERED": "1",
        # Flower starts its helpers (flower-superexec, flwr-serverapp) by name: same venv.
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


def format_node_config(config: dict[str, Any]) -> str:
    """`--node-config` syntax: space-separated key=value, strings quoted."""
    parts = []
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key}={value}")
        else:
            text = str(value).replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{key}="{text}"')
    return " ".join(parts)


def wait_health(address: str, ca: Path | None, timeout: float = 30.0, proc: Proc | None = None) -> float:
    """Poll the SuperLink's `/health` until it answers; returns the seconds it took."""
    scheme = "https" if ca else "http"
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{scheme}://{address}/health", timeout=2, context=context) as res:
                if res.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if proc is not None and proc.popen.poll() is not None:
            raise DeployError(f"SuperLink exited with code {proc.popen.returncode}:\n{log_tail(proc.log)}")
        if time.monotonic() - start > timeout:
            raise DeployError(f"SuperLink at {address} did not answer /health within {timeout:.0f} s")
        time.sleep(0.1)


def superlink_argv(host: str, port: int, tls: TlsPaths | None, database: Path | None) -> list[str]:
    argv = [flwr_bin("flower-superlink"), "--host", host, "--port", str(port),
            "--disable-runtime-dependency-installation"]
    if tls is None:
        argv.append("--insecure")
    else:
        argv += ["--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.cert),
                 "--ssl-keyfile", str(tls.key), "--enable-supernode-auth"]
    if database is not None:
        argv += ["--database", str(database)]
    return argv


def supernode_argv(superlink: str, runtime_port: int, node_config: dict[str, Any], *,
                   ca: Path | None, key: Path | None, warm: bool, max_wait: float | None = None,
                   node_poll: float | None = None) -> list[str]:
    if node_poll is None:
        argv = [flwr_bin("flower-supernode")]
    else:
        argv = [sys.executable, "-m", "server.deploy.supernode", "--node-poll", str(node_poll), "--"]
    argv += ["--superlink", superlink,
            "--host", "127.0.0.1", "--port", str(runtime_port)]
    if ca is None:
        argv.append("--insecure")
    else:
        argv += ["--root-certificates", str(ca)]
    if key is not None:
        argv += ["--auth-supernode-private-key", str(key)]
    if warm:
        argv += ["--isolation", "process"]
    if node_config:
        argv += ["--node-config", format_node_config(node_config)]
    if max_wait is not None:
        argv += ["--max-wait-time", str(max_wait)]
    return argv


def worker_argv(runtime_port: int, parent_pid: int, preload: tuple[str, ...],
                warmup: tuple[str, ...] = ()) -> list[str]:
    argv = [sys.executable, "-m", "server.deploy.worker",
            "--runtime-api-address", f"127.0.0.1:{runtime_port}", "--insecure",
            "--parent-pid", str(parent_pid)]
    for module in preload:
        argv += ["--preload", module]
    for ref in warmup:
        argv += ["--warmup", ref]
    return argv


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
        see `server.deploy.supernode`.
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

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.flwr_home = self.workdir / "flwr-home"
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.workdir / "logs", env=base_env(self.flwr_home))

    # lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "LocalFederation":
        self.supervisor.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.supervisor.__exit__(*exc)

    def close(self) -> None:
        self.supervisor.stop_all()

    # superlink ---------------------------------------------------------------------------
    def start_superlink(self, timeout: float = 30.0) -> str:
        from server.deploy.appdir import write_flwr_home

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

    def control(self):  # type: ignore[no-untyped-def]
        from server.deploy.control import Control

        return Control(self.address, self.tls.ca if self.tls else None)

    # supernodes --------------------------------------------------------------------------
    def start_node(self, name: str, node_config: dict[str, Any], *, key: Path | None = None,
                   ca: Path | None | bool = True, max_wait: float | None = None) -> Proc:
        """Start one SuperNode (+ its warm worker). `ca=True` uses the federation's CA."""
        ca_path = (self.tls.ca if self.tls else None) if ca is True else (ca or None)
        runtime_port = free_port()
        node = self.supervisor.start(
            f"supernode-{name}",
            supernode_argv(self.address, runtime_port, node_config, ca=ca_path, key=key,
                           warm=self.warm, max_wait=max_wait, node_poll=self.node_poll),
        )
        self.nodes[name] = node
        if self.warm:
            self.workers[name] = self.supervisor.start(
                f"worker-{name}", worker_argv(runtime_port, node.pid, self.preload, self.warmup),
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
        t0 = time.monotonic()
        deadline = t0 + timeout
        with self.control() as control:
            while True:
                online = control.online()
                if len(online) >= count:
                    break
                self.supervisor.check()
                if time.monotonic() > deadline:
                    raise DeployError(f"only {len(online)} of {count} SuperNodes came online within {timeout:.0f} s")
                time.sleep(0.2)
        self.timings["nodes_ready_s"] = time.monotonic() - t0
        return self.timings["nodes_ready_s"]

    # runs --------------------------------------------------------------------------------
    def run(self, app_dir: Path, overrides: dict[str, Any] | None = None, timeout: float = 600.0):  # type: ignore[no-untyped-def]
        """Submit the app in `app_dir` and wait for the run to finish; returns its RunStatus."""
        with self.control() as control:
            t0 = time.monotonic()
            run_id = control.start_run(app_dir, overrides)
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
