"""A platform's side: `yinqi client up` runs its SuperNode (+ warm ClientApp worker) in the
foreground, next to its private data, until Ctrl-C or until the bank refuses it.

The SuperNode gets the platform's file, name, ledger, privacy policy (its approved ClientApps
pinned by identity) and refusal log as `node_config`; the rows never leave this machine, and the
bank cannot change any of it. Every refusal is printed as one line while the node runs, and
`yinqi client status` shows the node, its policy, its ledger and its refusals. Flower's refusals become one-line errors: an unregistered key (the
SuperLink answers HTTP 412, the SuperNode exits 305) and a plaintext node pointed at a TLS bank
(no response until it gives up).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.errors import NodeError
from clients.ledger import PrivacyLedger
from clients.node.approval import IDENTITIES_KEY, installed_identity, pinned_identities
from clients.node.commands import CLIENT_PRELOAD, CLIENT_WARMUP, supernode_argv, worker_argv, worker_ready
from clients.node.status import write_node_state
from clients.policy import PrivacyPolicy
from clients.refusals import LOG_KEY, Refusal, read_refusals
from federation.flower import base_env
from federation.processes import Proc, Supervisor, log_tail
from federation.waiting import free_port

ACTIVE_MARK = "SuperNode ID:"


@dataclass
class PlatformNode:
    bank: str
    data: Path
    name: str
    key: Path | None = None
    ca: Path | None = None
    epsilon_budget: float | None = None  # overrides the policy's lifetime ε
    ledger_db: str | None = None
    node_poll: float | None = 0.1
    connect_timeout: float = 60.0
    policy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    refusal_log: Path | None = None

    @property
    def effective_policy(self) -> PrivacyPolicy:
        return self.policy.with_lifetime(self.epsilon_budget)

    def identities(self) -> dict[str, str]:
        """{approved component: identity digest} pinned now, at the node's start."""
        return pinned_identities(self.effective_policy)

    def state(self, pid: int) -> dict[str, Any]:
        """What `yinqi client status` shows about this node (written when it starts)."""
        policy = self.effective_policy
        return {
            "name": self.name,
            "bank": self.bank,
            "tls": self.ca is not None,
            "key": str(self.key) if self.key else None,
            "data": str(self.data.resolve()),
            "ledger_db": self.ledger_db,
            "policy": {"source": policy.source, "lines": policy.describe(), "node_config": policy.to_node_config()},
            "apps": [
                {"component": c, "identity": digest, "describe": installed_identity(c).describe()}
                for c, digest in self.identities().items()
            ],
            "fab_hashes": list(policy.fab_hashes),
            "refusal_log": str(self.refusal_log.resolve()) if self.refusal_log else None,
            "pid": pid,
        }

    def node_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"data-path": str(self.data.resolve()), "platform-name": self.name}
        if self.ledger_db:
            config["ledger-db"] = self.ledger_db
        config.update(self.effective_policy.to_node_config())
        config[IDENTITIES_KEY] = json.dumps(self.identities(), sort_keys=True)
        if self.refusal_log is not None:
            config[LOG_KEY] = str(self.refusal_log.resolve())
        return config


def explain_exit(log: Path, node: PlatformNode) -> str:
    """One line saying why the SuperNode stopped, from what Flower logged."""
    text = log.read_text(errors="replace") if log.exists() else ""
    if "code: 2004" in text or "No SuperNode found with the given public key" in text:
        return (
            f"the bank at {node.bank} refused this node's key {node.key}: it is not registered "
            f"(the bank must run `yinqi bank register {node.key}.pub --name {node.name}`)"
        )
    if "Exit Code: 305" in text and node.ca is None:
        return (
            f"could not connect to the bank at {node.bank} without TLS (a bank with TLS and node "
            "authentication ignores plaintext nodes: pass --ca CA.crt --key KEY)"
        )
    if "Exit Code: 305" in text:
        return f"could not connect to the bank at {node.bank}: " + _last_reason(text)
    if "certificate verify failed" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        return f"the bank at {node.bank} presented a certificate that {node.ca} does not verify"
    return f"the SuperNode stopped: {_last_reason(text)} (log {log})"


def _last_reason(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("INFO:")]
    for i, line in enumerate(lines):
        if "Exit Code:" in line and i + 2 < len(lines):
            return lines[i + 2]
    return lines[-1] if lines else "no output"


def start(node: PlatformNode, workdir: Path, supervisor: Supervisor | None = None) -> Supervisor:
    """Start the SuperNode and its worker under a supervisor (not waiting)."""
    if not node.data.is_file():
        raise NodeError(f"{node.data}: data file not found")
    if node.key is not None and node.ca is None:
        raise NodeError("--key needs --ca: SuperNode authentication runs only over TLS")
    for path, what in ((node.key, "--key"), (node.ca, "--ca")):
        if path is not None and not Path(path).is_file():
            raise NodeError(f"{path}: {what} file not found")
    if node.ledger_db:
        PrivacyLedger(node.ledger_db)  # tables made before the first round's worker opens it
    home = workdir / "flwr-home"
    sup = supervisor or Supervisor(workdir / "logs", env=base_env(home))
    runtime_port = free_port()
    proc = sup.start(
        "supernode",
        supernode_argv(
            node.bank,
            runtime_port,
            node.node_config(),
            ca=node.ca,
            key=node.key,
            warm=True,
            max_wait=node.connect_timeout,
            node_poll=node.node_poll,
            config_file=workdir / "node-config.toml",
        ),
    )
    sup.start(
        "worker",
        worker_argv(runtime_port, proc.pid, CLIENT_PRELOAD, CLIENT_WARMUP),
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    return sup


def wait_connected(sup: Supervisor, node: PlatformNode) -> None:
    """Block until the SuperNode is accepted by the bank, or raise a one-line reason."""
    proc, worker = sup.procs[0], sup.procs[1]
    # Flower gives up after --max-wait-time plus its last back-off: allow for that.
    deadline = time.monotonic() + 2 * node.connect_timeout + 10
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise NodeError(explain_exit(proc.log, node))
        if ACTIVE_MARK in proc.log.read_text(errors="replace"):
            _wait_worker(worker)
            return
        time.sleep(0.2)
    if node.ca is None:
        raise NodeError(
            f"no answer from the bank at {node.bank} without TLS within {node.connect_timeout:.0f} s "
            "(a bank with TLS ignores plaintext nodes: pass --ca CA.crt --key KEY)"
        )
    raise NodeError(f"no answer from the bank at {node.bank} within {node.connect_timeout:.0f} s")


def _wait_worker(worker: Proc, timeout: float = 300.0) -> None:
    """Until the warm worker has imported the ClientApp and warmed up (a task reaching it earlier
    would wait for that, past the bank's reply deadlines)."""
    deadline = time.monotonic() + timeout
    while not worker_ready(worker.log):
        if worker.popen.poll() is not None or time.monotonic() > deadline:
            raise NodeError(
                f"the ClientApp worker did not start (code {worker.popen.returncode}, log {worker.log}):\n"
                + log_tail(worker.log, 8)
            )
        time.sleep(0.2)


def serve(
    node: PlatformNode,
    workdir: Path,
    on_ready: Callable[[], object] | None = None,
    on_refusal: Callable[[Refusal], object] | None = None,
) -> None:
    """Run until Ctrl-C (clean stop) or until the SuperNode stops (error with its reason).

    `on_refusal(refusal)` is called for every refusal the node records while it runs.
    """
    # counted before the node starts: a run can reach it (and be refused) as soon as the
    # SuperLink sees it, before this process has noticed it is connected
    seen = len(read_refusals(node.refusal_log)) if node.refusal_log else 0
    with start(node, workdir) as sup:
        write_node_state(workdir, node.state(sup.procs[0].pid))
        wait_connected(sup, node)
        if on_ready is not None:
            on_ready()
        node_proc, worker = sup.procs[0], sup.procs[1]
        while node_proc.popen.poll() is None:
            if worker.popen.poll() is not None:
                raise NodeError(
                    f"the ClientApp worker stopped (code {worker.popen.returncode}, log {worker.log}):\n"
                    + log_tail(worker.log, 8)
                )
            if node.refusal_log is not None and on_refusal is not None:
                refusals = read_refusals(node.refusal_log)
                for refusal in refusals[seen:]:
                    on_refusal(refusal)
                seen = len(refusals)
            time.sleep(0.5)
        raise NodeError(explain_exit(node_proc.log, node))
