"""Daily interest: whole fen posted, the exact fraction carried, nothing lost or invented."""

from __future__ import annotations

from server.credit.interest import DENOMINATOR, accrue_day, accrue_days


def test_a_day_at_18_25_percent_on_10000_yuan_is_5_yuan():
    # 1,000,000 fen x 1825 bp / (10000 x 365) = 500 fen exactly
    assert accrue_day(1_000_000, 1825, 0) == (500, 0)


def test_fraction_is_carried_to_the_next_day():
    # 100 fen at 36.5 % a year = 0.1 fen a day: nothing for 9 days, 1 fen on the 10th
    posted, remainder = accrue_days([100] * 10, 3650, 0)
    assert posted == [0] * 9 + [1]
    assert remainder == 0


def test_remainder_numerator_is_over_the_denominator():
    # 1 fen at 1 bp: 1 / 3,650,000 fen
    assert accrue_day(1, 1, 0) == (0, 1)
    assert DENOMINATOR == 3_650_000


def test_no_principal_no_interest():
    assert accrue_day(0, 1800, 7) == (0, 7)


def test_a_year_posts_the_exact_interest_rounded_down():
    # 123,457 fen at 6 %: exact yearly interest 7407.42 fen -> 7407 fen posted over 365 days
    posted, remainder = accrue_days([123_457] * 365, 600, 0)
    assert sum(posted) == 7407
    assert remainder == 123_457 * 600 * 365 - 7407 * DENOMINATOR
