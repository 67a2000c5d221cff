"""The loan book's rules in the credit policy file: review, referral, draw terms, the five-tier
classification and model monitoring. Each is a section of the policy TOML; every key has a
default, so a policy file without the section gets the shipped rules.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, TypeVar

from server.credit.errors import BankError

# The five-tier loan classification used by Chinese banks (贷款五级分类), best to worst.
TIERS = ("normal", "special_mention", "substandard", "doubtful", "loss")
TIER_ZH = {"normal": "正常", "special_mention": "关注", "substandard": "次级", "doubtful": "可疑", "loss": "损失"}
NPL_TIERS = ("substandard", "doubtful", "loss")  # non-performing: 不良贷款


@dataclass(frozen=True)
class ReviewRules:
    """How a monthly review may move a limit (`[review]`).

    A raise is at most `max_raise_pct` % of the current limit per review (a line at 0 goes to the
    policy's limit); a change smaller than `min_change_pct` % of the current limit is not made;
    a line with a draw past due is not raised. A cut never goes below the principal drawn, and
    freezes new draws until a later review keeps or raises the limit.
    """

    max_raise_pct: int = 50
    min_change_pct: int = 10
    no_raise_when_overdue: bool = True


@dataclass(frozen=True)
class ReferralRules:
    """When an application goes to a credit officer instead of being decided (`[referral]`):
    a PD at or above `refer_pd_from` that a lending band still covers, or a limit at or above
    `refer_limit_from_fen`. 0 switches a rule off."""

    refer_pd_from: float = 0.15
    refer_limit_from_fen: int = 50_000_000


@dataclass(frozen=True)
class DrawTerms:
    """A draw's term in days (`[draw]`): due `term_days` after the day it is drawn."""

    default_term_days: int = 30
    max_term_days: int = 365


@dataclass(frozen=True)
class Classification:
    """Days past due from which each tier applies (`[classification]`); below
    `special_mention_dpd` a draw is normal. The defaults follow the 2023 rules for Chinese
    banks' asset classification: overdue at all is at least special mention, more than 90 days
    substandard, more than 270 doubtful, more than 360 loss."""

    special_mention_dpd: int = 1
    substandard_dpd: int = 91
    doubtful_dpd: int = 271
    loss_dpd: int = 361

    def thresholds(self) -> tuple[tuple[str, int], ...]:
        """(tier, first day past due it applies), worst last."""
        return (
            ("special_mention", self.special_mention_dpd),
            ("substandard", self.substandard_dpd),
            ("doubtful", self.doubtful_dpd),
            ("loss", self.loss_dpd),
        )

    def tier_for(self, days_past_due: int) -> str:
        tier = "normal"
        for name, first in self.thresholds():
            if days_past_due >= first:
                tier = name
        return tier


@dataclass(frozen=True)
class MonitoringRules:
    """Model monitoring (`[monitoring]`): PSI alert and watch levels over `groups` groups of
    equal training share, judged only for months with at least `min_population` merchants
    scored; calibration judged per band with at least `calibration_min` outcomes, an alert when
    |z| exceeds `calibration_z`. A merchant defaulted when a draw reached `default_tier` within
    `horizon_months` of the decision."""

    psi_alert: float = 0.25
    psi_watch: float = 0.10
    groups: int = 10
    min_population: int = 100
    calibration_z: float = 3.0
    calibration_min: int = 30
    horizon_months: int = 6
    default_tier: str = "substandard"


R = TypeVar("R")


def section(data: dict[str, Any], name: str, cls: type[R], source: str) -> R:
    """The `[name]` table of a policy as `cls`; unknown keys and wrong types are refused."""
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise BankError(f"{source}: [{name}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        field = fields.get(key)
        if field is None:
            raise BankError(f"{source}: [{name}] has no setting '{key}'; expected one of {', '.join(fields)}")
        default = field.default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok:
            raise BankError(
                f"{source}: [{name}] {key} = {value!r}; expected a {type(default).__name__} like {default!r}"
            )
        values[key] = value
    rules = cls(**values)
    check(rules, f"{source}: [{name}]")
    return rules


def check(rules: Any, where: str) -> None:
    """Refuse rules that cannot work (negative days, thresholds out of order, ...)."""
    if isinstance(rules, ReviewRules):
        if rules.max_raise_pct < 0 or not 0 <= rules.min_change_pct <= 100:
            raise BankError(f"{where}: max_raise_pct must be >= 0 and min_change_pct within 0..100")
    elif isinstance(rules, ReferralRules):
        if not 0.0 <= rules.refer_pd_from <= 1.0 or rules.refer_limit_from_fen < 0:
            raise BankError(f"{where}: refer_pd_from must lie in [0, 1] and refer_limit_from_fen be >= 0")
    elif isinstance(rules, DrawTerms):
        if not 1 <= rules.default_term_days <= rules.max_term_days <= 3650:
            raise BankError(f"{where}: expected 1 <= default_term_days <= max_term_days <= 3650")
    elif isinstance(rules, Classification):
        days = [first for _, first in rules.thresholds()]
        if days[0] < 1 or any(a >= b for a, b in itertools.pairwise(days)):
            raise BankError(f"{where}: days past due must start at 1 or more and increase tier by tier, got {days}")
    elif isinstance(rules, MonitoringRules):
        if not 0 < rules.psi_watch <= rules.psi_alert:
            raise BankError(f"{where}: expected 0 < psi_watch <= psi_alert")
        if rules.groups < 2 or rules.min_population < 1 or rules.calibration_min < 1 or rules.horizon_months < 1:
            raise BankError(f"{where}: groups >= 2, min_population, calibration_min and horizon_months >= 1")
        if rules.calibration_z <= 0:
            raise BankError(f"{where}: calibration_z must be positive")
        if rules.default_tier not in TIERS[1:]:
            raise BankError(f"{where}: default_tier must be one of {', '.join(TIERS[1:])}")
