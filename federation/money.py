"""Money as people read it. Amounts are integer fen (1 yuan = 100 fen) everywhere in yinqi;
this is the one place they become text, without ever passing through a float."""

from __future__ import annotations


def yuan(fen: int) -> str:
    """Integer fen as yuan with thousands separators: 123456 -> '1,234.56', -5 -> '-0.05'."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"money is a whole number of fen, got {type(fen).__name__} {fen!r}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def rate(basis_points: int) -> str:
    """An annual rate in basis points as a percentage: 900 -> '9.00 %'."""
    if isinstance(basis_points, bool) or not isinstance(basis_points, int):
        raise TypeError(f"a rate is a whole number of basis points, got {basis_points!r}")
    sign = "-" if basis_points < 0 else ""
    whole, hundredths = divmod(abs(basis_points), 100)
    return f"{sign}{whole}.{hundredths:02d} %"
