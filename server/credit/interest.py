"""Daily simple interest in integer fen, exact over time.

Interest for one day is `principal x annual_rate_bp / (10000 x 365)` fen: a rational number.
Whole fen are posted each day and the fraction is carried as an integer numerator over
`DENOMINATOR` to the next day, so what is posted over any period equals the exact interest
rounded down to the fen (never more than 1 fen short, never drifting).
"""

from __future__ import annotations

from collections.abc import Iterable

DAYS_PER_YEAR = 365
DENOMINATOR = 10_000 * DAYS_PER_YEAR  # bp per unit x days per year


def accrue_day(principal_fen: int, annual_rate_bp: int, remainder: int) -> tuple[int, int]:
    """One day's interest: (fen to post, new remainder numerator over `DENOMINATOR`)."""
    if principal_fen <= 0 or annual_rate_bp <= 0:
        return 0, remainder
    exact = principal_fen * annual_rate_bp + remainder
    return exact // DENOMINATOR, exact % DENOMINATOR


def accrue_days(principals: Iterable[int], annual_rate_bp: int, remainder: int) -> tuple[list[int], int]:
    """Interest for consecutive days, given each day's end-of-day principal."""
    posted = []
    for principal in principals:
        fen, remainder = accrue_day(principal, annual_rate_bp, remainder)
        posted.append(fen)
    return posted, remainder
