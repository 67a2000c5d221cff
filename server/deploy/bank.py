"""The bank's side as long-lived services: `bank up`, `register`, `status`, `train`, `down`.

`up` starts, detached:

- the SuperLink (TLS + SuperNode authentication unless `--insecure`) on **loopback only**, with
  its database in the bank's data dir (registered node keys survive a restart);
- the Fleet gate (`server.deploy.fleetgate`) on the public `--host:--port`: the only thing the
  platforms reach, forwarding Flower's Fleet API and refusing the Control and Runtime APIs;
- the bank's gRPC services (`yinqi bank serve`: mutual TLS with the bank's CA, roles per RPC,
  periodic anchoring).

Their pids, ports and certificate paths go to the state file. `register`, `status` and `train`
use the Control API on loopback: they are operator actions on the bank's host. `train` submits
the real ServerApp for the platforms that are online and waits for the report.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.flower import base_env
from federation.processes import Proc, log_tail, pid_alive, stop_tree
from federation.waiting import free_port, port_taken
from server.deploy.control import Control
from server.deploy.errors import DeployError
from server.deploy.fleetgate import REFUSED, gate_argv
from server.deploy.launch import FAST_SERVERAPP, add_drops, run_config_for
from server.deploy.state import BankState, bank_dir
from server.deploy.superlink import TlsPaths, superlink_argv, wait_health
from server.security.ca import CertSet

LOOPBACK = "127.0.0.1"


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    import os

    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )


def _wait_port(address: str, timeout: float, popen: subprocess.Popen, log: Path, what: str) -> None:
    host, port = address.rsplit(":", 1)
    host = LOOPBACK if host in ("0.0.0.0", "") else host.strip("[]")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            pass
        if popen.poll() is not None:
            raise DeployError(f"{what} exited with code {popen.returncode}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise DeployError(f"{what} did not listen on {address} within {timeout:.0f} s")
        time.sleep(0.1)


def up(
    *,
    host: str = "127.0.0.1",
    port: int = 9092,
    certs: Path | None = None,
    insecure: bool = False,
    services_port: int | None = 50061,
    data_dir: Path | None = None,
    anchor_every: float = 60.0,
    timeout: float = 60.0,
    dashboard_port: int | None = 0,
) -> BankState:
    """Start the bank's SuperLink (loopback), Fleet gate (public) and services, detached."""
    directory = bank_dir(data_dir)
    try:
        old = BankState.read(directory)
    except DeployError:
        old = None
    if old is not None and pid_alive(old.superlink_pid):
        raise DeployError(
            f"the bank is already up (SuperLink {old.superlink_address}, pid {old.superlink_pid}); `yinqi bank down` first"
        )
    if insecure == (certs is not None):
        raise DeployError("give --certs DIR (TLS + node authentication) or --insecure (loopback tests only)")
    for what, wanted in (("--port", port), ("--services-port", services_port)):
        if wanted and port_taken(host, wanted):
            raise DeployError(
                f"{host}:{wanted} ({what}) is already in use: another bank (run `yinqi bank down` with its "
                f"data dir) or another program holds it; choose another {what}"
            )
    tls = None
    if certs is not None:
        found = CertSet.in_dir(certs)
        tls = TlsPaths(found.ca.resolve(), found.cert.resolve(), found.key.resolve())
    flwr_home = directory / "flwr-home"
    logs = directory / "logs"
    database = directory / "superlink.db"
    env = base_env(flwr_home)
    address = f"{host}:{port}"
    control_address = f"{LOOPBACK}:{free_port()}"
    from server.deploy.appdir import write_flwr_home

    conn: dict[str, Any] = {"address": control_address}  # the operator's `flwr` CLI: loopback
    if tls:
        conn["root-certificates"] = str(tls.ca)
    else:
        conn["insecure"] = True
    write_flwr_home(flwr_home, {"bank": conn}, default="bank")
    link = _spawn(
        superlink_argv(LOOPBACK, int(control_address.rsplit(":", 1)[1]), tls, database), logs / "superlink.log", env
    )
    state = BankState(
        address,
        link.pid,
        str(flwr_home),
        str(logs),
        str(database),
        control_address=control_address,
        ca=str(tls.ca) if tls else None,
        cert=str(tls.cert) if tls else None,
        key=str(tls.key) if tls else None,
        certs_dir=str(Path(certs).resolve()) if certs else None,
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    try:
        wait_health(control_address, tls.ca if tls else None, timeout, Proc("superlink", link, logs / "superlink.log"))
        upstream = f"{'https' if tls else 'http'}://{control_address}"
        gate = _spawn(
            gate_argv(
                sys.executable,
                address,
                upstream,
                ca=tls.ca if tls else None,
                cert=tls.cert if tls else None,
                key=tls.key if tls else None,
            ),
            logs / "fleetgate.log",
            env,
        )
        state.gate_pid = gate.pid
        _wait_port(address, timeout, gate, logs / "fleetgate.log", "the Fleet gate")
        if services_port is not None:
            services_address = f"{host}:{services_port}"
            argv = [sys.executable, "-m", "yinqi", "bank", "serve", "--address", services_address]
            argv += ["--certs", str(Path(certs).resolve())] if certs is not None else ["--insecure"]
            argv += ["--anchor-every", str(anchor_every)]
            services = _spawn(argv, logs / "services.log", env)
            state.services_address, state.services_pid = services_address, services.pid
            _wait_port(services_address, timeout, services, logs / "services.log", "the bank's services")
        if certs is not None and dashboard_port is not None:  # operators only: never without mutual TLS
            from server.dashboard.serve import spawn_argv, wait_for_url

            url_file = directory / "dashboard.url"
            url_file.unlink(missing_ok=True)
            board = _spawn(
                spawn_argv(sys.executable, Path(certs).resolve(), dashboard_port, url_file), logs / "dashboard.log", env
            )
            state.extra["dashboard"] = {
                "pid": board.pid,
                "url": wait_for_url(url_file, lambda: board.poll() is None, timeout),
            }
    except BaseException:
        for pid in (
            state.extra.get("dashboard", {}).get("pid"),
            state.services_pid,
            state.gate_pid,
            state.superlink_pid,
        ):
            if pid:
                stop_tree(pid)
        raise
    state.write(directory)
    return state


def down(data_dir: Path | None = None) -> list[str]:
    """Stop every process `up` started (and what they started); returns what was stopped."""
    directory = bank_dir(data_dir)
    state = BankState.read(directory)
    stopped = []
    for name, pid in (
        ("dashboard", state.extra.get("dashboard", {}).get("pid")),
        ("bank services", state.services_pid),
        ("Fleet gate", state.gate_pid),
        ("SuperLink", state.superlink_pid),
    ):
        if pid and pid_alive(pid):
            stop_tree(pid)
            stopped.append(f"{name} (pid {pid})")
    BankState.clear(directory)
    return stopped


def control(state: BankState) -> Control:
    """The SuperLink's Control API, on loopback (an operator on the bank's host)."""
    return Control(state.operator_address, Path(state.ca) if state.ca else None)


def register(pub: Path, name: str | None = None, data_dir: Path | None = None) -> int:
    state = BankState.read(bank_dir(data_dir))
    if not state.tls:
        raise DeployError("this bank runs --insecure: SuperNode authentication is off, nothing to register")
    with control(state) as ctl:
        return ctl.register(pub, name or Path(pub).name.removesuffix(".pub"))


@dataclass
class Rejection:
    kind: str
    line: str


_REJECTIONS = (
    (re.compile(r"ApiError:2004\].*No SuperNode found with the given public key"), "unregistered node key"),
    (re.compile(r"Invalid HTTP request received"), "connection without TLS"),
    (re.compile(re.escape(REFUSED)), "control-plane request from the network"),
)


def _fingerprint(line: str) -> str:
    """SHA256 fingerprint (as `ssh-keygen -lf KEY.pub` prints it) of the key in a log line."""
    import base64
    import codecs
    import hashlib

    match = re.search(r"public key: b'(.*?)', exception", line)
    if not match:
        return "?"
    try:
        from cryptography.hazmat.primitives import serialization

        pem = codecs.escape_decode(match.group(1).encode())[0]
        key = serialization.load_pem_public_key(pem)
        blob = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1]
        digest = hashlib.sha256(base64.b64decode(blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    except Exception:
        return "?"


def rejections(state: BankState, limit: int = 10) -> list[Rejection]:
    """Recent refusals (unregistered keys, plaintext connections, Control API requests reaching
    the public address), one line each, from the SuperLink's and the Fleet gate's logs."""
    lines: list[str] = []
    for name in ("superlink.log", "fleetgate.log"):
        try:
            lines += (Path(state.log_dir) / name).read_text(errors="replace").splitlines()
        except OSError:
            pass
    found = []
    for line in lines:
        for pattern, kind in _REJECTIONS:
            if pattern.search(line):
                stamp = line.split(" ", 1)[0] if line[:4].isdigit() else ""
                if "2004" in line:
                    detail = f"key {_fingerprint(line)} is not registered"
                elif REFUSED in line:
                    detail = line.split(REFUSED + ": ", 1)[-1].strip()[:160]
                else:
                    detail = line.strip()[:160]
                found.append(Rejection(kind, f"{stamp} {detail}".strip()))
    return found[-limit:]


def status(data_dir: Path | None = None) -> dict[str, Any]:
    state = BankState.read(bank_dir(data_dir))
    info: dict[str, Any] = {
        "superlink": {
            "address": state.superlink_address,
            "control_address": state.operator_address,
            "pid": state.superlink_pid,
            "running": pid_alive(state.superlink_pid),
            "tls": state.tls,
            "node_auth": state.tls,
        },
        "gate": {"address": state.superlink_address, "pid": state.gate_pid, "running": pid_alive(state.gate_pid)}
        if state.gate_pid
        else None,
        "services": {
            "address": state.services_address,
            "pid": state.services_pid,
            "running": pid_alive(state.services_pid),
        }
        if state.services_pid
        else None,
        "nodes": [],
        "rejected": [r.__dict__ for r in rejections(state)],
        "logs": state.log_dir,
        "started": state.started,
    }
    if info["superlink"]["running"]:
        with control(state) as ctl:
            info["nodes"] = [n.__dict__ for n in ctl.nodes()]
    return info


def train(
    config_kwargs: dict[str, Any],
    *,
    data_dir: Path | None = None,
    min_platforms: int = 2,
    wait: float = 30.0,
    timeout: float = 1800.0,
    reply_timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
    on_round: Callable[[str], None] | None = None,
) -> tuple[Any, int]:
    """Run the real ServerApp on the running SuperLink with the platforms online now;
    `on_round` gets a line per round as the ServerApp finishes it (from its report.json)."""
    from server.deploy.appdir import REAL_CLIENTAPP, REAL_SERVERAPP, write_app_dir
    from server.fl.config import FederationConfig
    from server.fl.report import Report

    directory = bank_dir(data_dir)
    state = BankState.read(directory)
    if not pid_alive(state.superlink_pid):
        raise DeployError(f"the bank's SuperLink (pid {state.superlink_pid}) is not running; `yinqi bank up` again")
    deadline = time.monotonic() + wait
    with control(state) as ctl:
        while len(online := ctl.online()) < min_platforms and time.monotonic() < deadline:
            time.sleep(0.3)
        if len(online) < min_platforms:
            raise DeployError(
                f"{len(online)} platform(s) online at {state.superlink_address}, need {min_platforms} "
                "(start them with `yinqi client up --bank HOST:PORT --data FILE`)"
            )
        names = [n.name or f"node-{n.node_id}" for n in online]
        # The bank does not know the platforms' files: each SuperNode has its own `data-path`.
        config = FederationConfig(
            clients=[Path(f"remote/{n}") for n in names],
            platform_names=names,
            min_clients=min(min_platforms, len(names)),
            **config_kwargs,
        )
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").unlink(missing_ok=True)
        engine = "deployment (" + ("TLS + node auth" if state.tls else "insecure") + f", {state.superlink_address})"
        drops_file = directory / "drops.jsonl"
        drops_file.unlink(missing_ok=True)
        run_config = run_config_for(
            config,
            engine,
            REAL_SERVERAPP,
            reply_timeout=reply_timeout,
            log_file=Path(state.log_dir) / "serverapp.log",
            drops_file=drops_file,
        )
        app_dir = write_app_dir(directory / "app", run_config, serverapp=FAST_SERVERAPP, clientapp=REAL_CLIENTAPP)
        node_names = {n.node_id: n.name or f"node-{n.node_id}" for n in online}
        run_id = ctl.start_run(app_dir)
        if progress is not None:
            progress(f"run {run_id} started on {len(names)} platform(s): {', '.join(names)}")

        def alive() -> None:
            if not pid_alive(state.superlink_pid):
                raise DeployError("the bank's SuperLink stopped during the run")

        from federation.progress import RoundFollower, round_line

        follower = RoundFollower(out / "report.json", lambda r, rep: on_round(round_line(r, rep)) if on_round else None)
        try:
            with follower:
                result = ctl.wait_run(run_id, timeout, poll=0.5, alive=alive)
        except KeyboardInterrupt:
            ctl.stop_run(run_id)
            raise
    if result.sub_status != "completed" or not (out / "report.json").exists():
        log = Path(state.log_dir) / "serverapp.log"
        raise DeployError(
            f"run {run_id} {result.sub_status or result.status}"
            f"{': ' + result.details if result.details else ''} (ServerApp log {log})"
        )

    report = Report.read(out / "report.json")
    add_drops(report, drops_file, node_names)
    report.write(out / "report.json")
    return report, run_id
