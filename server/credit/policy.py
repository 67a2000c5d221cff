"""Credit-limit policy: PD band x recent turnover, read from TOML, integer money (fen).

A pure module: `CreditPolicy.decide(pd, amounts)` turns a default probability and the
merchant's recent monthly amounts into a `LimitDecision`. Rounding is explicit: each monthly
amount is converted to fen half-up, the mean turnover is floored to the fen, the limit is
floored to `limit_step_fen` and capped at `max_limit_fen`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from federation.config import setting
from server.credit.errors import BankError
from server.credit.rules import Classification, DrawTerms, MonitoringRules, ReferralRules, ReviewRules, section

DEFAULT_POLICY = "default_policy.toml"


@dataclass(frozen=True)
class Band:
    """One PD band: merchants with PD <= `max_pd` (and above the previous band's) get it."""

    name: str
    max_pd: float
    turnover_multiple_pct: int
    annual_rate_bp: int


@dataclass(frozen=True)
class LimitDecision:
    """What the policy decided for one merchant, in integer fen."""

    band: str
    pd: float
    turnover_fen: int
    limit_fen: int
    annual_rate_bp: int


def to_fen(amount: float, unit_fen: int) -> int:
    """An amount in `unit_fen` units as whole fen, rounded half-up (0.005 yuan -> 1 fen).

    Half-up of the amount as written (`repr`), so in decimal; the float product decides alone
    when it is clearly away from a half (a review converts three amounts per line), and exact
    decimal arithmetic decides the rest."""
    if not math.isfinite(amount):
        raise BankError(f"amount {amount!r} is not a finite number")
    scaled = float(amount) * unit_fen
    if abs(scaled) < 2**52:
        whole = math.floor(scaled)
        if abs(scaled - whole - 0.5) > 16 * math.ulp(scaled):
            return whole + 1 if scaled - whole > 0.5 else whole
    try:
        return int((Decimal(repr(float(amount))) * unit_fen).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:  # beyond Decimal's 28 digits: no real turnover is that large
        raise BankError(f"amount {amount:g} is too large to be a month's turnover") from None


@dataclass(frozen=True)
class CreditPolicy:
    """PD bands and the turnover rule, and the loan book's rules (review, referral, draw terms,
    classification, monitoring); see `default_policy.toml` for every knob."""

    bands: tuple[Band, ...]
    turnover_months: int = 3
    amount_unit_fen: int = 100
    limit_step_fen: int = 10000
    max_limit_fen: int = 100_000_000
    source: str = "<built-in>"
    review: ReviewRules = field(default_factory=ReviewRules)
    referral: ReferralRules = field(default_factory=ReferralRules)
    draw: DrawTerms = field(default_factory=DrawTerms)
    classification: Classification = field(default_factory=Classification)
    monitoring: MonitoringRules = field(default_factory=MonitoringRules)

    def __post_init__(self) -> None:
        where = self.source
        if not self.bands:
            raise BankError(f"{where}: a credit policy needs at least one [[band]]")
        previous = -1.0
        for band in self.bands:
            if not previous < band.max_pd <= 1.0:
                raise BankError(
                    f"{where}: band '{band.name}': max_pd must increase and lie in (0, 1], got {band.max_pd}"
                )
            if band.turnover_multiple_pct < 0 or band.annual_rate_bp < 0:
                raise BankError(f"{where}: band '{band.name}': multiple and rate must be >= 0")
            previous = band.max_pd
        if self.bands[-1].max_pd != 1.0:
            raise BankError(f"{where}: the last band must have max_pd = 1.0 so every PD has a band")
        for name in ("turnover_months", "amount_unit_fen", "limit_step_fen", "max_limit_fen"):
            if getattr(self, name) < 1:
                raise BankError(f"{where}: {name} must be a positive integer")

    def band_for(self, pd: float) -> Band:
        """The first band whose `max_pd` is at least `pd`."""
        if not 0.0 <= pd <= 1.0 or math.isnan(pd):
            raise BankError(f"default probability {pd!r} is outside [0, 1]")
        return next(band for band in self.bands if pd <= band.max_pd)

    def turnover_fen(self, amounts: Sequence[float]) -> int:
        """Mean of the latest `turnover_months` monthly amounts, in fen, floored."""
        recent = list(amounts)[-self.turnover_months :]
        if not recent:
            raise BankError("no monthly amounts to compute the recent turnover from")
        total = sum(to_fen(a, self.amount_unit_fen) for a in recent)
        return max(total, 0) // len(recent)

    def decide(self, pd: float, amounts: Sequence[float]) -> LimitDecision:
        """PD and monthly amounts (oldest first) -> band, turnover, limit and rate."""
        band = self.band_for(pd)
        turnover = self.turnover_fen(amounts)
        raw = turnover * band.turnover_multiple_pct // 100
        limit = min(raw // self.limit_step_fen * self.limit_step_fen, self.max_limit_fen)
        return LimitDecision(band.name, float(pd), turnover, limit, band.annual_rate_bp)

    def decide_many(self, pds: Sequence[float], amounts: Sequence[Sequence[float]]) -> list[LimitDecision | BankError]:
        """`decide` for many merchants (a review's chunk), in arrays: the same decisions, and
        for a merchant `decide` refuses, its error. A merchant whose numbers are not plainly
        in range (a PD outside [0, 1], no amounts, an amount near half a fen or beyond 2**52
        fen) is decided by `decide` itself, so the rounding stays `to_fen`'s."""
        count = len(pds)
        if len(amounts) != count:
            raise ValueError(f"{count} PDs but {len(amounts)} lists of amounts")
        months = self.turnover_months
        recent = [list(a)[-months:] for a in amounts]
        used = np.fromiter(map(len, recent), np.int64, count)
        flat = np.fromiter(chain.from_iterable(recent), np.float64, int(used.sum()))
        scaled = flat * self.amount_unit_fen
        whole = np.floor(scaled)
        with np.errstate(invalid="ignore"):
            plain = (np.abs(scaled) < 2**52) & (np.abs(scaled - whole - 0.5) > 16 * np.spacing(np.abs(scaled)))
            fen = np.where(scaled - whole > 0.5, whole + 1, whole)
        starts = np.cumsum(used) - used
        has = used > 0
        totals = np.zeros(count, np.int64)
        ok = has.copy()  # every amount plain, and then the PD in range
        if has.any():
            first = starts[has]
            totals[has] = np.add.reduceat(np.where(plain, fen, 0).astype(np.int64), first)
            ok[has] &= np.add.reduceat((~plain).astype(np.int64), first) == 0
        turnover = np.maximum(totals, 0) // np.maximum(used, 1)
        pd = np.asarray(pds, np.float64)
        ok &= (pd >= 0.0) & (pd <= 1.0)
        ceilings = np.array([band.max_pd for band in self.bands])
        band_of = np.searchsorted(ceilings, np.where(ok, pd, 0.0), side="left")
        multiple = np.array([band.turnover_multiple_pct for band in self.bands], np.int64)[band_of]
        ok &= turnover <= (2**62) // np.maximum(multiple, 1)  # no int64 overflow below
        raw = np.where(ok, turnover, 0) * multiple // 100
        limit = np.minimum(raw // self.limit_step_fen * self.limit_step_fen, self.max_limit_fen)
        decided: list[LimitDecision | BankError] = []
        for i, (fine, b, value, fen_turnover, fen_limit) in enumerate(
            zip(ok.tolist(), band_of.tolist(), pd.tolist(), turnover.tolist(), limit.tolist(), strict=True)
        ):
            if fine:
                band = self.bands[b]
                decided.append(LimitDecision(band.name, value, fen_turnover, fen_limit, band.annual_rate_bp))
                continue
            try:
                decided.append(self.decide(value, recent[i]))
            except BankError as exc:
                decided.append(exc)
        return decided

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> CreditPolicy:
        try:
            bands = tuple(
                Band(
                    name=str(b["name"]),
                    max_pd=float(b["max_pd"]),
                    turnover_multiple_pct=int(b["turnover_multiple_pct"]),
                    annual_rate_bp=int(b["annual_rate_bp"]),
                )
                for b in data.get("band", [])
            )
            knobs = {
                k: int(data[k])
                for k in ("turnover_months", "amount_unit_fen", "limit_step_fen", "max_limit_fen")
                if k in data
            }
        except KeyError as exc:
            raise BankError(f"{source}: every [[band]] needs {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise BankError(f"{source}: {exc}") from None
        return cls(
            bands=bands,
            source=source,
            review=section(data, "review", ReviewRules, source),
            referral=section(data, "referral", ReferralRules, source),
            draw=section(data, "draw", DrawTerms, source),
            classification=section(data, "classification", Classification, source),
            monitoring=section(data, "monitoring", MonitoringRules, source),
            **knobs,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> CreditPolicy:
        """The policy at `path`, else `[bank] credit_policy` / `YINQI_CREDIT_POLICY`, else the default."""
        path = path or setting("credit_policy", section_name="bank")
        if path is None:
            text = resources.files("server.credit").joinpath(DEFAULT_POLICY).read_text()
            return cls.from_dict(tomllib.loads(text), source=DEFAULT_POLICY)
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise BankError(f"{path}: credit policy file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise BankError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))
