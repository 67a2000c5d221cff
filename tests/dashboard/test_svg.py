"""The server-rendered charts and map: real marks for real values, escaped labels, honest axes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from server.dashboard import svg

NS = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def test_bars_are_as_tall_as_their_values_and_unknown_months_draw_none() -> None:
    root = parsed(svg.bar_chart(["2026-01", "2026-02", "2026-03"], [2, None, 4], "applications"))
    bars = root.findall(f".//{NS}rect[@class='bar']")
    assert len(bars) == 2
    assert float(bars[1].get("height")) == 2 * float(bars[0].get("height"))
    assert [b.find(f"{NS}title").text for b in bars] == ["2026-01: 2", "2026-03: 4"]


def test_an_axis_of_counts_has_whole_steps() -> None:
    assert svg.nice_top(5, integral=True) == 8 and svg.nice_top(1, integral=True) == 4
    assert svg.nice_top(0.99, integral=False) == 1.0
    ticks = [t.text for t in parsed(svg.bar_chart(["a"], [5], "n")).findall(f".//{NS}text[@class='tick']")]
    assert ticks[:5] == ["0", "2", "4", "6", "8"]


def test_no_data_says_so() -> None:
    assert "no data yet" in svg.bar_chart([], [], "x") and "<svg" not in svg.line_chart(["1"], {"AUC": [None]}, "y")


def test_the_map_marks_raised_devices_and_escapes_names() -> None:
    devices = [
        {"device_id": "exc-1", "lat": 35.0, "lon": 113.0, "alert": "raised"},
        {"device_id": "<b>exc-2</b>", "lat": 31.0, "lon": 119.0, "alert": "clear"},
    ]
    zones = [{"name": "quarry", "polygon": [[34.0, 113.0], [34.0, 114.0], [35.0, 114.0]]}]
    markup = svg.device_map(devices, [30.0, 40.0, 110.0, 120.0], zones, "map")
    root = parsed(markup)
    dots = root.findall(f".//{NS}circle")
    assert [d.get("class") for d in dots] == ["device raised", "device clear"]
    assert float(dots[0].get("cy")) < float(dots[1].get("cy"))  # further north is higher up
    assert float(dots[0].get("cx")) < float(dots[1].get("cx"))  # further east is to the right
    assert len(root.findall(f".//{NS}polygon")) == 1 and "<b>" not in markup
