"""After Ctrl-C: a report that says where the run stopped and what it cost, never a half model.

The ServerApp writes its report as it goes (status "running", the round it is in). When a run
is interrupted, the harness settles it: status "interrupted", the round it stopped in, and the
ε each platform spent in this run as its own privacy ledger records it (the ledger is the
platform's book; a platform that trained in the interrupted round has paid for it). No model
is written: the ServerApp only saves one after its last round.

Ctrl-C can also come once there is nothing left to stop: after the last round, while or after
the ServerApp writes the model (it no longer asks the Grid for anything then). That run has
finished, and its model, whose ε the platforms have paid, stands: the report says "ok" and is
returned as it is (`settle_interrupted`), rather than called interrupted beside a model.
"""

from __future__ import annotations

import logging
from pathlib import Path

from clients.ledger import PrivacyLedger
from federation.model import META_FILE
from server.fl.errors import RunInterrupted
from server.fl.report import Report

log = logging.getLogger("yinqi.fl")


def settle_interrupted(report_path: Path, rounds: int, ledger_url: str | None, run_id: str | None) -> Report:
    """After Ctrl-C: the report of a run that had finished by then, returned as it is (the
    ServerApp writes status "ok" only once the model is committed, `meta.json` written last);
    otherwise the report marked interrupted (with the ledger's ε) and `RunInterrupted` raised
    with its one line."""
    report = Report.read(report_path) if report_path.is_file() else Report()
    model_dir = Path(report.model_dir or report_path.parent)
    if report.status == "ok" and (model_dir / META_FILE).is_file():
        log.warning(
            "interrupted after the run had finished: the model stands (%s, %d round(s))", model_dir, len(report.rounds)
        )
        return report
    done = sum(1 for r in report.rounds if r.aggregated and r.federated_auc is not None)
    where = (
        f"interrupted at round {report.current_round} of {rounds}"
        if report.current_round
        else "interrupted before round 1"
    )
    spent = _spent_in_run(ledger_url, run_id) if run_id else {}
    if spent:
        report.epsilon = spent
    report.status = "interrupted"
    report.error = f"{where} ({done} round(s) completed); no model written"
    report.write(report_path)
    cost = ", ".join(f"{name} {eps:.3f}" for name, eps in sorted(report.epsilon.items()))
    message = f"{report.error}; report {report_path}" + (
        f"; ε spent in this run (the platforms' ledgers): {cost}" if cost else ""
    )
    error = RunInterrupted(message)
    error.run_id = run_id
    raise error from None


def _spent_in_run(ledger_url: str | None, run_id: str) -> dict[str, float]:
    """Each platform's composed ε for `run_id` in the ledger (its largest entry)."""
    if not ledger_url:
        return {}
    spent: dict[str, float] = {}
    for entry in PrivacyLedger(ledger_url).entries():
        if entry.run_id == run_id:
            spent[entry.platform] = max(spent.get(entry.platform, 0.0), float(entry.epsilon))
    return spent
