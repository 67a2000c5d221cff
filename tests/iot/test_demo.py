"""The demo's IoT part runs end to end on the embedded broker and shows every rule."""

from __future__ import annotations

import io

from rich.console import Console

from yinqi import demo_iot


def test_demo_part_shows_alerts_delivered_and_a_rent_statement(tmp_path) -> None:
    out = io.StringIO()
    demo_iot.run(tmp_path / "iot", Console(file=out, width=140))
    text = out.getvalue()
    assert "6 of 6 broken or hostile messages" in text
    assert "time out of range" in text and "more than 5 min ahead" in text and "finite number" in text
    assert "seed-format messages understood with no configuration" in text
    assert "10 sent; seed-0001 last seen 2026-03-31 23:00" in text
    for rule in ("idle", "geofence", "fuel"):
        assert any(line.count(rule) and "1 raised, 1 cleared" in line for line in text.splitlines()), rule
    assert "alerts stored at the bank (one row per id)" in text
    assert f"rent exc-0003 {demo_iot.MONTH}" in text
