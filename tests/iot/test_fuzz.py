"""Property-based fuzzing of what devices and lessors hand the monitor (issue 11).

Telemetry from any device, in any format, and any `telemetry.toml`: no input yields a traceback,
a hang, or a state change without a record. Every message ends processed (stored) or
dead-lettered with a reason, and the monitor still raises a real alert afterwards.

Settings: `FUZZ` below (the `yinqi-iot-fuzz` profile). `YINQI_FUZZ_EXAMPLES` sets the examples
per property (default 200; the whole file runs in about 15-25 s on 2 busy cores), and
`deadline` fails any single input that takes longer than 2 s (a hang).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.storage import forget_engine
from iot.errors import IotError
from iot.formats import TelemetryReader, load_formats
from iot.monitor import Monitor
from iot.rules import Rules
from iot.store import IotStore
from iot.telemetry import Rejected, Telemetry
from tests.iot.conftest import T0, FakeClock, reading

settings.register_profile(
    "yinqi-iot-fuzz",
    max_examples=int(os.environ.get("YINQI_FUZZ_EXAMPLES", "200")),
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=os.environ.get("CI", "") not in ("", "0", "false"),  # CI: the same inputs every run
)
FUZZ = settings.get_profile("yinqi-iot-fuzz")
WALL = datetime(2026, 3, 20, tzinfo=UTC)

FIELD_NAMES = [
    "device_id", "ts", "lat", "lon", "working_hours", "fuel_l",
    "timestamp", "location", "fuel_consumption", "gps", "serial", "time",
]  # fmt: skip
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -0.0, 1e308, 1e-308, 2**63, 2**64, 2**256, 253402300800, 1772438400]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=30),
    st.sampled_from(["2026-03-02T08:00:00Z", "9999-12-31T23:59:59-12:00", "2099-01-01T00:00:00Z", "exc-1", ""]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=6),
    max_leaves=20,
)  # fmt: skip


def _near_valid() -> st.SearchStrategy[dict[str, object]]:
    """A message in yinqi's or the seed's format with some fields replaced, dropped or nested."""
    base = st.sampled_from(
        [
            {"device_id": "exc-1", "ts": "2026-03-02T08:00:00Z", "lat": 35.0, "lon": 115.0,
             "working_hours": 100.0, "fuel_l": 600.0},
            {"device_id": "exc-1", "timestamp": 1772438400, "location": {"lat": 35.0, "lon": 115.0},
             "working_hours": 100.0, "fuel_consumption": 600.0},
        ]
    )  # fmt: skip
    return st.builds(
        lambda b, changes, drop: {k: v for k, v in {**b, **changes}.items() if k not in drop},
        base,
        st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=3),
        st.sets(st.sampled_from(FIELD_NAMES), max_size=2),
    )


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(_encode),
    _near_valid().map(_encode),
)
topics = st.one_of(st.just("device/exc-1/data"), st.text(max_size=40), st.sampled_from(["device//data", "device/a/b"]))


@FUZZ
@given(topic=topics, payload=payloads)
def test_any_message_is_read_or_rejected_with_a_one_line_reason(topic: str, payload: bytes) -> None:
    reader = TelemetryReader(wall=lambda: WALL)
    try:
        r = reader.read(topic, payload)
    except Rejected as exc:
        assert exc.reason and "\n" not in exc.reason and len(exc.reason) < 1000
        return
    assert isinstance(r, Telemetry)
    assert all(math.isfinite(v) for v in (r.lat, r.lon, r.working_hours, r.fuel_l))
    assert -90 <= r.lat <= 90 and -180 <= r.lon <= 180 and r.working_hours >= 0 and r.fuel_l >= 0
    assert r.ts.tzinfo is UTC and datetime(2000, 1, 1, tzinfo=UTC) <= r.ts <= WALL + timedelta(minutes=5)
    assert topic == f"device/{r.device_id}/data"


@FUZZ
@given(messages=st.lists(st.tuples(topics, payloads), min_size=1, max_size=8))
def test_every_message_is_stored_or_dead_lettered_and_alerting_goes_on(tmp_path_factory, messages) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'iot.db'}"
    try:
        _every_message_is_stored_or_dead_lettered(IotStore(url), messages)
    finally:
        forget_engine(url)  # one database per example: keep the process's open files bounded


def _every_message_is_stored_or_dead_lettered(store: IotStore, messages: list[tuple[str, bytes]]) -> None:
    monitor = Monitor(store, Rules(), clock=FakeClock(T0), wall=lambda: WALL)
    for topic, payload in messages:
        monitor.handle(topic, payload)  # never raises: the store works
    s = monitor.stats
    assert s["received"] == len(messages)
    assert s["processed"] + s["duplicates"] + s["dead_letters"] == len(messages)
    assert sum(store.dead_letter_counts().values()) == s["dead_letters"]
    assert len(store.pending(limit=1000)) == s["alerts_raised"] + s["alerts_cleared"]  # every event stored
    # a real breach by a well-behaved device is still seen
    events = monitor.handle("device/probe/data", reading("probe", 0, lon=125.0).to_payload())
    assert [(e.device_id, e.rule) for e in events] == [("probe", "geofence")]


mapping_values = st.one_of(
    st.sampled_from(FIELD_NAMES),
    st.text(max_size=12),
    st.fixed_dictionaries(
        {"path": st.sampled_from(["a", "a.b", "", "a..b", ".", "x" * 9 + ".y"]) | st.text(max_size=10)},
        optional={"unit": st.sampled_from(["iso", "s", "ms", "us", "h", "min", "l", "ml", "gal", "deg", "text", "kg"])},
    ),
    st.integers(),
    st.lists(st.text(max_size=3), max_size=2),
)


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    return str(value)


@FUZZ
@given(
    entries=st.lists(
        st.dictionaries(st.sampled_from([*FIELD_NAMES, "name", "fuel"]), mapping_values, max_size=8),
        max_size=3,
    ),
    junk=st.one_of(st.just(""), st.text(max_size=40)),
)
def test_any_mapping_file_loads_or_is_refused_in_one_line(tmp_path_factory, entries, junk: str) -> None:
    text = (
        "".join("[[formats]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in entry.items()) for entry in entries) + junk
    )
    path = Path(tmp_path_factory.mktemp("fmt")) / "telemetry.toml"
    path.write_bytes(text.encode("utf-8", "replace"))  # lone surrogates from st.text become '?'

    try:
        formats = load_formats(path)
    except IotError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    reader = TelemetryReader(formats, wall=lambda: WALL)
    for payload in (_encode({"a": 1}), reading().to_payload()):
        try:
            reader.read("device/exc-1/data", payload)
        except Rejected:
            pass
