"""What a merchant-month feature row can plausibly hold, shared by the platform that sends it
and the bank that scores it.

One value outside these bounds (an amount of 1e300, or -1e6 that scores as a near-certain payer)
is a data error or an attack: it is refused with the merchant, row and feature named, before
anything is sent, stored or scored.
"""

from __future__ import annotations

import math

from federation.features import GROWTH_CAP

BOUNDS: dict[str, tuple[float, float]] = {
    "amount": (0.0, 1e12),  # a month's sales in the platform's unit (yuan)
    "count": (0.0, 1e10),
    "avg_rating": (0.0, 5.0),
    "inventory_turnover": (0.0, 1e6),
    "growth": (-1.0, GROWTH_CAP),
    "first_month": (0.0, 1.0),
    "past_defaults": (0.0, 1200.0),
}
OTHER_NUMBER = (-1e12, 1e12)  # any other numeric feature a model may use
MAX_MONTHS = 120  # rows per merchant
MAX_FIELDS = 64  # features per row
MAX_TEXT = 64  # characters of a feature name or a text value


def number_problem(name: str, value: float) -> str | None:
    """Why `value` cannot be feature `name` ("is inf; expected a finite number"), or None."""
    if not math.isfinite(value):
        return f"is {value}; expected a finite number"
    low, high = BOUNDS.get(name, OTHER_NUMBER)
    if not low <= value <= high:
        return f"is {value:g}; expected {low:g} to {high:g}"
    return None


def text_problem(value: str) -> str | None:
    """Why `value` cannot be a text feature, or None."""
    if len(value) > MAX_TEXT or not value.isprintable():
        return f"is text of {len(value)} characters; expected at most {MAX_TEXT} printable ones"
    return None
