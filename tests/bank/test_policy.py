"""The credit-limit policy: PD bands x recent turnover, with explicit integer rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.credit.errors import BankError
from server.credit.policy import Band, CreditPolicy, to_fen

POLICY = CreditPolicy(
    bands=(
        Band("A", 0.02, 300, 600),
        Band("B", 0.05, 200, 900),
        Band("decline", 1.0, 0, 0),
    ),
    turnover_months=3,
    amount_unit_fen=100,
    limit_step_fen=10_000,
    max_limit_fen=5_000_000,
)


def test_amounts_convert_to_fen_half_up():
    assert to_fen(12.345, 100) == 1235
    assert to_fen(12.344, 100) == 1234
    assert to_fen(0.005, 100) == 1


def _decimal_half_up(amount: float, unit: int) -> int:
    return int((Decimal(repr(amount)) * unit).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
        st.decimals(min_value=-(10**9), max_value=10**9, places=3).map(float),  # halves of a fen
        st.integers(min_value=-(10**9), max_value=10**9).map(lambda n: n / 200),
    ),
    st.sampled_from([1, 10, 100, 1000]),
)
def test_the_float_shortcut_rounds_as_decimal_arithmetic_does(amount: float, unit: int) -> None:
    """Amounts away from a half take the float product's rounding: it must equal half-up of
    the amount as written, for every amount, halves included."""
    assert to_fen(amount, unit) == _decimal_half_up(amount, unit)


def _decided(policy: CreditPolicy, pd: float, amounts: list[float]) -> object:
    try:
        return policy.decide(pd, amounts)
    except BankError as exc:
        return ("refused", str(exc))


_AMOUNTS = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.integers(min_value=-(10**9), max_value=10**9).map(lambda n: n / 200),  # halves of a fen
    st.sampled_from([float("nan"), float("inf"), 1e300, 2.0**52, 2.0**52 / 100, 0.005, -0.005]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(min_value=0.0, max_value=1.0), st.sampled_from([0.02, 0.05, -0.1, 1.5, float("nan")])),
            st.lists(_AMOUNTS, max_size=5),
        ),
        max_size=30,
    )
)
def test_deciding_many_at_once_decides_each_as_decide_does(lines: list[tuple[float, list[float]]]) -> None:
    """A review decides a chunk in arrays (`decide_many`): each merchant's decision, or its
    refusal word for word, must be what `decide` gives it alone, halves and extremes included."""
    many = POLICY.decide_many([pd for pd, _ in lines], [amounts for _, amounts in lines])
    alone = [_decided(POLICY, pd, amounts) for pd, amounts in lines]
    assert [("refused", str(d)) if isinstance(d, BankError) else d for d in many] == alone


def test_an_amount_too_large_for_fen_is_a_one_line_refusal_not_a_decimal_error():
    with pytest.raises(BankError, match=r"^amount 1e\+300 is too large to be a month's turnover$"):
        to_fen(1e300, 100)
    with pytest.raises(BankError, match="not a finite number"):
        to_fen(float("inf"), 100)


@pytest.mark.parametrize(
    ("pd", "band"),
    [(0.0, "A"), (0.02, "A"), (0.0201, "B"), (0.05, "B"), (0.051, "decline"), (1.0, "decline")],
)
def test_band_is_the_first_whose_max_pd_covers_the_pd(pd, band):
    assert POLICY.band_for(pd).name == band


def test_turnover_is_the_floored_mean_of_the_latest_months():
    # the oldest month (9999 yuan) is outside the 3-month window: (100000 + 200000 + 300001) // 3
    assert POLICY.turnover_fen([9999.0, 1000.0, 2000.0, 3000.005]) == 200000


def test_limit_is_turnover_times_band_multiple_rounded_down_to_the_step():
    # band A: 3 x 123456 fen = 370368 -> rounded down to 10000s = 370000
    decision = POLICY.decide(0.01, [1234.56])
    assert (decision.band, decision.turnover_fen, decision.limit_fen, decision.annual_rate_bp) == (
        "A",
        123456,
        370000,
        600,
    )


def test_limit_band_b_doubles_turnover():
    assert POLICY.decide(0.03, [1000.0, 2000.0, 3000.0]).limit_fen == 400000


def test_limit_is_capped():
    assert POLICY.decide(0.01, [1_000_000.0]).limit_fen == 5_000_000


def test_declined_band_gives_zero():
    assert POLICY.decide(0.4, [1_000.0]).limit_fen == 0


def test_pd_outside_unit_interval_is_refused():
    with pytest.raises(BankError, match="outside"):
        POLICY.band_for(1.2)


def test_shipped_default_policy_loads():
    policy = CreditPolicy.load()
    assert [b.name for b in policy.bands] == ["A", "B", "C", "D", "decline"]


def test_policy_file_with_unordered_bands_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        '[[band]]\nname="x"\nmax_pd=0.5\nturnover_multiple_pct=100\nannual_rate_bp=1\n'
        '[[band]]\nname="y"\nmax_pd=0.1\nturnover_multiple_pct=100\nannual_rate_bp=1\n'
    )
    with pytest.raises(BankError, match="band 'y': max_pd must increase"):
        CreditPolicy.load(path)


def test_policy_file_from_setting(tmp_path, monkeypatch):
    path = tmp_path / "p.toml"
    path.write_text(
        'limit_step_fen = 1\n[[band]]\nname="all"\nmax_pd=1.0\nturnover_multiple_pct=150\nannual_rate_bp=365\n'
    )
    monkeypatch.setenv("YINQI_CREDIT_POLICY", str(path))
    assert CreditPolicy.load().decide(0.9, [10.01]).limit_fen == 1501
