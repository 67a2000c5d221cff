"""The privacy ledger: ε recorded per platform/run/round; refusals past the budget."""

from __future__ import annotations

import pytest

from clients.ledger import BudgetExceeded, PrivacyLedger


def test_runs_add_up_and_a_run_costs_its_largest_epsilon(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = PrivacyLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.record("shop", "run-1", 1, 1.0, 1e-5)
    ledger.record("shop", "run-1", 2, 1.5, 1e-5)
    ledger.record("shop", "run-2", 1, 0.5, 1e-5)
    ledger.record("other", "run-1", 1, 9.0, 1e-5)
    summary = ledger.summary("shop", "run-2")
    assert (summary.spent_other_runs, summary.spent_this_run, summary.total) == (1.5, 0.5, 2.0)
    ledger.record("shop", "run-1", 2, 1.6, 1e-5)  # a repeated round overwrites, never duplicates
    assert len(ledger.entries("shop")) == 3


def test_training_past_a_lifetime_budget_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = PrivacyLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.record("shop", "run-1", 3, 2.5, 1e-5)
    ledger.check_budget("shop", "run-2", 0.5, budget=3.0)
    with pytest.raises(BudgetExceeded, match=r"shop.*budget epsilon=3"):
        ledger.check_budget("shop", "run-2", 0.6, budget=3.0)
    ledger.check_budget("shop", "run-2", 0.6, budget=3.0, lifetime=False)  # per-run cap only


def test_ledger_command_lists_entries_as_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    PrivacyLedger(url).record("shop", "run-1", 1, 0.7, 1e-5)
    done = subprocess.run(
        [sys.executable, "-m", "yinqi", "client", "ledger", "--db", url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [(e["platform"], e["round"], e["epsilon"]) for e in json.loads(done.stdout)] == [("shop", 1, 0.7)]
