"""The parties that call the bank's services, and which role may call which RPC.

A caller's identity is its client certificate (issued by `yinqi bank certs issue`): the
subject's common name is the party's name, its organisational unit the role; the role names
are `federation.identity`'s, which a platform's services use too. `POLICY` names,
for every RPC the bank serves, the roles allowed to call it and whether it changes state (then
every call is written to the call log with the caller's identity). An RPC missing from the table
is refused to everyone: a new service is closed until someone opens it here.
"""

from __future__ import annotations

from dataclasses import dataclass

from federation.identity import ANY_ROLE, AUDITOR, INSECURE, IOT_MONITOR, OPERATOR, PLATFORM, ROLES, Identity

__all__ = [
    "ANY_ROLE",
    "AUDITOR",
    "INSECURE",
    "IOT_MONITOR",
    "OPERATOR",
    "PLATFORM",
    "POLICY",
    "ROLES",
    "Identity",
    "Rule",
    "short_method",
]


@dataclass(frozen=True)
class Rule:
    """Who may call one RPC, and whether a call may change the bank's state."""

    roles: frozenset[str]
    changes_state: bool


def _rule(*roles: str, changes_state: bool) -> Rule:
    return Rule(frozenset(roles), changes_state)


POLICY: dict[str, Rule] = {
    # scoring and credit lines: the bank's own operators
    "/yinqi.bank.ScoringService/Score": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.ScoringService/ScoreBatch": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.CreditService/Open": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.CreditService/Draw": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.CreditService/Repay": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.CreditService/Accrue": _rule(OPERATOR, changes_state=True),
    # reading a line: operators and auditors any line, a platform only its own merchants' lines
    "/yinqi.bank.CreditService/Get": _rule(OPERATOR, AUDITOR, PLATFORM, changes_state=False),
    # the loan book: operators review, move the bank's clock, lift holds and refresh monitoring;
    # operators and auditors read the clock, the metrics and the applications
    "/yinqi.bank.LoanBookService/Review": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.LoanBookService/AdvanceClock": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.LoanBookService/SetClock": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.LoanBookService/Unfreeze": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.LoanBookService/Monitor": _rule(OPERATOR, changes_state=True),
    "/yinqi.bank.LoanBookService/Clock": _rule(OPERATOR, AUDITOR, changes_state=False),
    "/yinqi.bank.LoanBookService/Metrics": _rule(OPERATOR, AUDITOR, changes_state=False),
    "/yinqi.bank.LoanBookService/Applications": _rule(OPERATOR, AUDITOR, changes_state=False),
    # what platforms tell the bank about their own merchants
    "/yinqi.platform.PlatformService/ReportConsent": _rule(PLATFORM, changes_state=True),
    "/yinqi.platform.PlatformService/ReportFeatures": _rule(PLATFORM, changes_state=True),
    # vertical FL: a platform aligns its merchant ids with the bank's by private set intersection
    "/yinqi.vertical.PsiService/Intersect": _rule(PLATFORM, changes_state=True),
    # equipment alerts: delivered by IoT monitors, read by operators and auditors
    "/yinqi.alerts.AlertService/Deliver": _rule(IOT_MONITOR, changes_state=True),
    "/yinqi.alerts.AlertService/List": _rule(OPERATOR, AUDITOR, changes_state=False),
}


def short_method(method: str) -> str:
    """'/yinqi.bank.CreditService/Draw' -> 'CreditService/Draw'."""
    service, _, name = method.strip("/").partition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}" if name else method
