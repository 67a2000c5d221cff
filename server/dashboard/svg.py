"""Charts and the device map as inline SVG, rendered on the server.

No JavaScript charting library and no tile server: a page is complete HTML that renders the
same with scripts off, loads fast, and screenshots exactly. Every chart draws real values
(a bar per month, a point per round) with their numbers in `<title>` tooltips; labels are
escaped. A chart without data says so instead of drawing an empty frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP, PAD_RIGHT = 640, 220, 56, 36, 14, 12
COLOURS = ("#2b6cb0", "#dd6b20", "#38a169", "#d53f8c", "#805ad5", "#718096")
TIER_COLOURS = {
    "normal": "#38a169",
    "special_mention": "#d69e2e",
    "substandard": "#dd6b20",
    "doubtful": "#e53e3e",
    "loss": "#742a2a",
}


def _empty(label: str) -> str:
    return f'<p class="empty">{escape(label)}</p>'


def _frame(inner: str, aria: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(aria)}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet">{inner}</svg>'
    )


def nice_top(top: float, integral: bool) -> float:
    """The axis' top: four gridline steps of 1, 2, 2.5 or 5 × 10^k covering `top` (whole
    steps for counts, so a gridline never reads "2" for 2.5)."""
    import math

    wanted = max(top, 1e-12) / 4
    k = math.floor(math.log10(wanted))
    for base in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = base * 10**k
        if step >= wanted and not (integral and (step < 1 or step != int(step))):
            return step * 4
    return max(4.0, math.ceil(wanted) * 4.0)


def _axis(top: float, fmt: str, labels: Sequence[str], step: float) -> str:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{escape(fmt.format(value))}</text>'
        )
    every = max(1, len(labels) // 12)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = PAD_LEFT + step * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" class="tick" text-anchor="middle">{escape(label)}</text>'
            )
    return "".join(parts)


def bar_chart(labels: Sequence[str], values: Sequence[float | None], aria: str, fmt: str = "{:,.0f}") -> str:
    """One bar per label; None draws no bar (the value is not known, e.g. a month with no stocks)."""
    known = [v for v in values if v is not None]
    if not labels or not known:
        return _empty(f"{aria}: no data yet")
    top = nice_top(max(known), all(float(v).is_integer() for v in known))
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / len(labels)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        if value is None:
            continue
        h = plot_h * value / top
        x = PAD_LEFT + step * i + step * 0.15
        bars.append(
            f'<rect class="bar" x="{x:.1f}" y="{PAD_TOP + plot_h - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{COLOURS[0]}"><title>{escape(label)}: {escape(fmt.format(value))}</title></rect>'
        )
    return _frame(_axis(top, fmt, labels, step) + "".join(bars), aria)


def stacked_bars(
    labels: Sequence[str], series: dict[str, Sequence[int | None]], aria: str, fmt: str = "{:,.0f}"
) -> str:
    """Bars stacked by series (balances by tier per month); colours by `TIER_COLOURS`."""
    totals = [sum(s[i] or 0 for s in series.values()) for i in range(len(labels))]
    if not labels or not any(totals):
        return _empty(f"{aria}: no data yet")
    top = nice_top(max(totals), all(float(t).is_integer() for t in totals))
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / len(labels)
    bars = []
    for i, label in enumerate(labels):
        base = 0.0
        for j, (name, values) in enumerate(series.items()):
            value = values[i] or 0
            if not value:
                continue
            h = plot_h * value / top
            y = PAD_TOP + plot_h - plot_h * base / top - h
            colour = TIER_COLOURS.get(name, COLOURS[j % len(COLOURS)])
            bars.append(
                f'<rect class="bar" x="{PAD_LEFT + step * i + step * 0.15:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(label)} {escape(name)}: {escape(fmt.format(value))}</title></rect>'
            )
            base += value
    legend = "".join(
        f'<rect x="{PAD_LEFT + 110 * j}" y="2" width="10" height="10" fill="{TIER_COLOURS.get(n, COLOURS[j % len(COLOURS)])}"/>'
        f'<text x="{PAD_LEFT + 110 * j + 14}" y="11" class="tick">{escape(n)}</text>'
        for j, n in enumerate(series)
    )
    return _frame(_axis(top, fmt, labels, step) + "".join(bars) + legend, aria)


def line_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    aria: str,
    fmt: str = "{:.3f}",
    top: float | None = None,
) -> str:
    """A line with dots per series over the same labels (AUC and KS per round)."""
    known = [v for s in series.values() for v in s if v is not None]
    if not labels or not known:
        return _empty(f"{aria}: no data yet")
    top = top or nice_top(max(known), False)
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / len(labels)
    parts = []
    for j, (name, values) in enumerate(series.items()):
        colour = COLOURS[j % len(COLOURS)]
        points = [
            (PAD_LEFT + step * (i + 0.5), PAD_TOP + plot_h - plot_h * v / top, labels[i], v)
            for i, v in enumerate(values)
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(f'<polyline class="line" fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts += [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{escape(name)} {escape(label)}: '
            f"{escape(fmt.format(v))}</title></circle>"
            for x, y, label, v in points
        ]
        parts.append(
            f'<rect x="{PAD_LEFT + 90 * j}" y="2" width="10" height="10" fill="{colour}"/>'
            f'<text x="{PAD_LEFT + 90 * j + 14}" y="11" class="tick">{escape(name)}</text>'
        )
    return _frame(_axis(top, fmt, labels, step) + "".join(parts), aria)


def device_map(
    devices: Sequence[Mapping[str, Any]], box: Sequence[float], zones: Sequence[Mapping[str, Any]], aria: str
) -> str:
    """Devices at their last reported position (longitude right, latitude up) over the geofence:
    the default box dashed, zones as polygons; a device with an open alert is red."""
    lat_min, lat_max, lon_min, lon_max = (float(v) for v in box)
    lats = [float(d["lat"]) for d in devices] + [lat_min, lat_max]
    lons = [float(d["lon"]) for d in devices] + [lon_min, lon_max]
    margin_lat, margin_lon = (max(lats) - min(lats)) * 0.08 or 1, (max(lons) - min(lons)) * 0.08 or 1
    south, north = min(lats) - margin_lat, max(lats) + margin_lat
    west, east = min(lons) - margin_lon, max(lons) + margin_lon
    width, height = 640, 420

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return (width * (lon - west) / (east - west), height * (north - lat) / (north - south))

    x0, y0 = xy(lat_max, lon_min)
    x1, y1 = xy(lat_min, lon_max)
    parts = [
        f'<rect class="fence" x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
        f'fill="#ebf8ff" stroke="#2b6cb0" stroke-dasharray="6 4"><title>geofence {lat_min}–{lat_max}°N, '
        f"{lon_min}–{lon_max}°E</title></rect>"
    ]
    for zone in zones:
        polygon = zone["polygon"]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(float(p[0]), float(p[1])) for p in polygon))
        parts.append(
            f'<polygon class="zone" points="{points}" fill="#c6f6d5" fill-opacity="0.6" stroke="#38a169">'
            f"<title>{escape(str(zone['name']))}</title></polygon>"
        )
    for d in devices:
        x, y = xy(float(d["lat"]), float(d["lon"]))
        raised = d.get("alert") == "raised"
        parts.append(
            f'<circle class="device {"raised" if raised else "clear"}" cx="{x:.1f}" cy="{y:.1f}" r="{7 if raised else 5}" '
            f'fill="{"#e53e3e" if raised else "#38a169"}" stroke="#1a202c"><title>{escape(str(d["device_id"]))} '
            f"({float(d['lat']):.4f}, {float(d['lon']):.4f}): {'alert raised' if raised else 'no open alert'}</title></circle>"
        )
    if not devices:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="tick">no device has reported yet</text>'
        )
    return _frame("".join(parts), aria, width, height)
