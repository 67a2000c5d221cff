"""Usage-based rent: a graduated tier schedule in TOML, statements per device per month.

Pure arithmetic on integers and `Decimal`: hours are rounded to 0.01 h, each tier line to a
whole minor unit (half up), and the total is the sum of the lines plus the base fee.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from iot.errors import IotError
from iot.telemetry import MAX_WORKING_HOURS

HOUR_QUANTUM = Decimal("0.01")


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    up_to_hours: StrictInt | None = Field(None, gt=0)
    rate_per_hour: StrictInt = Field(ge=0)  # minor units per working hour


class Schedule(BaseModel):
    """A rent schedule: monthly base fee plus graduated hourly tiers (falling rates)."""

    model_config = ConfigDict(extra="forbid")
    currency: str = "CNY"
    base_fee: StrictInt = Field(0, ge=0)
    tiers: list[Tier] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> Schedule:
        bounds = [t.up_to_hours for t in self.tiers]
        if bounds[-1] is not None:
            raise ValueError("the last tier must have no up_to_hours (it takes every hour beyond)")
        if any(b is None for b in bounds[:-1]):
            raise ValueError("only the last tier may omit up_to_hours")
        inner = [b for b in bounds[:-1] if b is not None]
        if inner != sorted(set(inner)):
            raise ValueError("up_to_hours must strictly increase from tier to tier")
        rates = [t.rate_per_hour for t in self.tiers]
        if any(b > a for a, b in pairwise(rates)):
            raise ValueError("rate_per_hour must not rise from tier to tier (rent falls with usage)")
        return self


def load_schedule(path: str | Path | None = None) -> Schedule:
    """A schedule from TOML; None: the default shipped as `iot/rent.toml`."""
    if path is None:
        text, where = (Path(__file__).with_name("rent.toml")).read_text(encoding="utf-8"), "iot/rent.toml"
    else:
        try:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise IotError(f"{path}: rent schedule not found") from None
    try:
        return Schedule.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise IotError(f"{where}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "schedule"
        raise IotError(f"{where}: field '{field}': {err['msg']}") from None


@dataclass(frozen=True)
class Line:
    from_hours: int
    to_hours: int | None
    hours: Decimal
    rate_per_hour: int
    amount: int


@dataclass(frozen=True)
class Statement:
    device_id: str
    month: str
    currency: str
    hours: Decimal
    base_fee: int
    lines: tuple[Line, ...]
    total: int
    fuel_l: float | None = None

    @property
    def effective_rate(self) -> int:
        """Total rent per working hour, in minor units (0 when the machine did not work)."""
        if self.hours == 0:
            return 0
        return int((Decimal(self.total) / self.hours).quantize(Decimal(1), ROUND_HALF_UP))

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "month": self.month,
            "currency": self.currency,
            "hours": str(self.hours),
            "base_fee": self.base_fee,
            "total": self.total,
            "effective_rate_per_hour": self.effective_rate,
            "fuel_l": self.fuel_l,
            "lines": [
                {
                    "from_hours": ln.from_hours,
                    "to_hours": ln.to_hours,
                    "hours": str(ln.hours),
                    "rate_per_hour": ln.rate_per_hour,
                    "amount": ln.amount,
                }
                for ln in self.lines
            ],
        }


def rent(schedule: Schedule, hours: float | Decimal) -> tuple[Decimal, tuple[Line, ...], int]:
    """(billed hours, tier lines, total) for a month with `hours` working hours."""
    if not math.isfinite(hours) or not 0 <= hours <= MAX_WORKING_HOURS:
        raise IotError(f"working hours must be a number from 0 to {MAX_WORKING_HOURS:,.0f}, got {hours}")
    billed = Decimal(str(hours)).quantize(HOUR_QUANTUM, ROUND_HALF_UP)
    lines: list[Line] = []
    lower = 0
    for tier in schedule.tiers:
        upper = tier.up_to_hours
        in_tier = max(Decimal(0), (billed if upper is None else min(billed, Decimal(upper))) - lower)
        if in_tier > 0:
            amount = int((in_tier * tier.rate_per_hour).quantize(Decimal(1), ROUND_HALF_UP))
            lines.append(Line(lower, upper, in_tier.quantize(HOUR_QUANTUM), tier.rate_per_hour, amount))
        if upper is None or billed <= upper:
            break
        lower = upper
    return billed, tuple(lines), schedule.base_fee + sum(ln.amount for ln in lines)


def statement(schedule: Schedule, device_id: str, month: str, hours: float, fuel_l: float | None = None) -> Statement:
    billed, lines, total = rent(schedule, hours)
    return Statement(
        device_id,
        month,
        schedule.currency,
        billed,
        schedule.base_fee,
        lines,
        total,
        None if fuel_l is None else round(fuel_l, 3),
    )


def check_month(month: str) -> str:
    """`YYYY-MM` or an IotError."""
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise IotError(f"--month '{month}': expected YYYY-MM, e.g. 2026-03")
    return month
