"""Usage pricing with hand-computed values (default schedule: base 200000; 12000/h to 100 h,
10000/h to 200 h, 8000/h beyond)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from iot.errors import IotError
from iot.pricing import Schedule, check_month, load_schedule, rent, statement


@pytest.mark.parametrize(
    ("hours", "lines", "total"),
    [
        (0, [], 200_000),
        (50, [600_000], 800_000),  # 50 x 12000
        (100, [1_200_000], 1_400_000),
        (150, [1_200_000, 500_000], 1_900_000),  # 100 x 12000 + 50 x 10000
        (250.555, [1_200_000, 1_000_000, 404_480], 2_804_480),  # 250.56 h: 50.56 x 8000
    ],
)
def test_graduated_tiers(hours: float, lines: list[int], total: int) -> None:
    _, got_lines, got_total = rent(load_schedule(), hours)
    assert [ln.amount for ln in got_lines] == lines
    assert got_total == total


def test_unit_rent_falls_as_hours_rise() -> None:
    schedule = load_schedule()
    rates = [statement(schedule, "d", "2026-03", h).effective_rate for h in (50, 150, 300)]
    # 800000/50, 1900000/150 (12666.67 -> 12667), (200000+1200000+1000000+800000)/300
    assert rates == [16_000, 12_667, 10_667]


def test_rounding_is_half_up_to_whole_minor_units() -> None:
    schedule = Schedule.model_validate({"tiers": [{"rate_per_hour": 333}]})
    billed, _, total = rent(schedule, 1.005)  # 1.005 h -> 1.01 h; 1.01 x 333 = 336.33 -> 336
    assert billed == Decimal("1.01")
    assert total == 336
    assert isinstance(total, int)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[[tiers]]\nup_to_hours = 10\nrate_per_hour = 5\n", "last tier must have no up_to_hours"),
        ("[[tiers]]\nup_to_hours = 10\nrate_per_hour = 5\n[[tiers]]\nrate_per_hour = 7\n", "must not rise"),
        ("[[tiers]]\nrate_per_hour = 5.5\n", r"tiers.0.rate_per_hour"),
    ],
)
def test_bad_schedules_are_refused(tmp_path, toml: str, message: str) -> None:
    path = tmp_path / "rent.toml"
    path.write_text(toml)
    with pytest.raises(IotError, match=message):
        load_schedule(path)


def test_month_format() -> None:
    assert check_month("2026-03") == "2026-03"
    with pytest.raises(IotError, match="expected YYYY-MM"):
        check_month("2026-13")
