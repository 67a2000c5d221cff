"""`yinqi client status`: what a platform's node runs on, what it allows, what it spent, what it refused.

`yinqi client up` writes `node.json` into the node's work directory when it starts (bank, data
file, policy, the approved ClientApps with their identities, ledger, pid); `node_status` reads
it back with the ledger's ε and the node's refusals, whether or not the node still runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clients.errors import NodeError
from clients.node.approval import installed_identity
from clients.refusals import read_refusals
from federation import files
from federation.clock import utcnow
from federation.processes import pid_alive

STATE_FILE = "node.json"


def write_node_state(workdir: Path, state: dict[str, Any]) -> Path:
    """Record what this node was started with (read by `node_status`), with the time."""
    state = {**state, "started_at": utcnow().isoformat()}
    return files.write_text(Path(workdir) / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))


def node_status(workdir: Path, recent: int = 10) -> dict[str, Any]:
    """The node's state, ledger summary and last `recent` refusals."""
    from clients.ledger import PrivacyLedger
    from clients.policy import PrivacyPolicy

    path = Path(workdir) / STATE_FILE
    if not path.is_file():
        raise NodeError(f"{workdir}: no node has run here ({STATE_FILE} missing); start one with `yinqi client up`")
    try:
        state: dict[str, Any] = json.loads(path.read_text())
        policy = PrivacyPolicy.from_node_config(state["policy"]["node_config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NodeError(f"{path}: damaged node state ({type(exc).__name__}: {exc})") from None
    state["running"] = pid_alive(int(state.get("pid") or 0))
    ledger: dict[str, Any] = {"db": state.get("ledger_db"), "spent": None, "lifetime": policy.lifetime_epsilon}
    if state.get("ledger_db"):
        spent = PrivacyLedger(str(state["ledger_db"])).summary(str(state["name"]), run_id="").spent_other_runs
        ledger["spent"] = spent
        if policy.lifetime_epsilon is not None:
            ledger["left"] = max(0.0, policy.lifetime_epsilon - spent)
    state["ledger"] = ledger
    for app in state.get("apps", []):  # is the installed code still the code approved at start?
        app["unchanged"] = installed_identity(str(app["component"])).digest == app["identity"]
    refusals = read_refusals(state["refusal_log"]) if state.get("refusal_log") else []
    state["refusals"] = [r.__dict__ for r in refusals[-recent:]]
    state["refusal_count"] = len(refusals)
    return state
