"""The monitor's core, free of MQTT: telemetry in, alert events out, state kept durable.

`handle(topic, payload)` is called for every message (by the paho client in `iot.mqtt`, or
directly in tests); `sweep()` runs periodically and is the only place idleness is detected,
because idleness is the *absence* of messages. The clock is injectable.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from iot.alerts import Alert, AlertBook
from iot.rules import Rules, Zone, check_fuel, check_geofence, check_idle, inside_geofence
from iot.store import IotStore, Usage
from iot.telemetry import Rejected, Telemetry, parse

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventClock:
    """A clock that reads the newest telemetry timestamp seen: for replays and simulations
    whose device time runs faster than the wall clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.latest = start or datetime(1970, 1, 1, tzinfo=UTC)

    def observe(self, ts: datetime) -> None:
        if ts > self.latest:
            self.latest = ts

    def __call__(self) -> datetime:
        return self.latest


RECENT = 512  # timestamps remembered per device to recognise QoS 1 redeliveries


@dataclass
class DeviceState:
    last_ts: datetime
    lat: float
    lon: float
    hours: float
    fuel: float
    ref_hours: float  # start of the current fuel window
    ref_fuel: float
    recent: deque[datetime] = field(default_factory=lambda: deque(maxlen=RECENT))
    recent_set: set[datetime] = field(default_factory=set)

    def seen(self, ts: datetime) -> bool:
        """True if this reading was handled before; else remember it."""
        if ts in self.recent_set or ts == self.last_ts:
            return True
        if len(self.recent) == RECENT:
            self.recent_set.discard(self.recent[0])
        self.recent.append(ts)
        self.recent_set.add(ts)
        return False


class Monitor:
    """Device state, rules and the alert lifecycle over one `IotStore`.

    Parameters
    ----------
    store : where alerts, the outbox, dead letters and device state are kept.
    rules : the rule set (see `iot.rules.load_rules`).
    clock : returns "now" (UTC, aware) for the idle sweep; `EventClock()` for replays.
    on_events : called with the alert events after they are stored (e.g. to wake delivery).
    """

    def __init__(
        self,
        store: IotStore,
        rules: Rules,
        clock: Clock = utc_now,
        on_events: Callable[[list[Alert]], None] | None = None,
    ) -> None:
        self.store, self.rules, self.clock, self.on_events = store, rules, clock, on_events
        self.lock = threading.Lock()  # device state and the alert book
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self.book = AlertBook(store.active_alerts())
        self.devices: dict[str, DeviceState] = {
            d: DeviceState(r.last_ts, r.lat, r.lon, r.working_hours, r.fuel_l, r.working_hours, r.fuel_l)
            for d, r in store.devices().items()
        }
        self._dirty: set[str] = set()
        self._usage: dict[tuple[str, int, int], Usage] = {}  # (device, year, month)
        self._idle_after = timedelta(hours=rules.idle.threshold_hours)
        self._observe = getattr(clock, "observe", None)
        # per-message constants, read once: pydantic attribute access is slow on the hot path
        self._box = rules.geofence.default
        self._fuel_window = rules.fuel.window_hours
        self._fuel_limit = rules.fuel.max_litres_per_hour
        self._fences: dict[str, tuple[str | None, list[Zone]]] = {}  # device -> (lease, zones)
        self.stats: Counter[str] = Counter()

    # messages -------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> list[Alert]:
        """Validate, update state, apply the rules; returns the alert events this caused."""
        self.stats["received"] += 1
        try:
            reading = parse(topic, payload)
        except Rejected as exc:
            self.store.dead_letter(topic, payload, exc.reason, exc.device_id)
            self.stats["dead_letters"] += 1
            return []
        with self.lock:
            events = self._apply(reading)
        if events:
            self._emit(events)
        return events

    def _apply(self, r: Telemetry) -> list[Alert]:
        device_id, ts = r.device_id, r.ts
        if self._observe is not None:
            self._observe(ts)
        state = self.devices.get(device_id)
        if state is not None and state.seen(ts):
            self.stats["duplicates"] += 1  # a QoS 1 redelivery
            return []
        self.stats["processed"] += 1
        key = (device_id, ts.year, ts.month)
        usage = self._usage.get(key)
        if usage is None:
            self._usage[key] = Usage(ts, r.working_hours, r.fuel_l, ts, r.working_hours, r.fuel_l)
        else:
            usage.add(ts, r.working_hours, r.fuel_l)
        if state is not None and ts < state.last_ts:
            # QoS 1 does not keep order across reconnects: a late reading counts for usage,
            # but the rules judge the newest state only
            self.stats["late"] += 1
            return []
        previous_ts = state.last_ts if state is not None else None
        before = (
            None
            if state is None
            else (state.last_ts, state.lat, state.lon, state.hours, state.fuel, state.ref_hours, state.ref_fuel)
        )
        if state is None:
            state = DeviceState(ts, r.lat, r.lon, r.working_hours, r.fuel_l, r.working_hours, r.fuel_l)
            state.seen(ts)
            self.devices[device_id] = state
        else:
            state.last_ts, state.lat, state.lon = ts, r.lat, r.lon
            state.hours, state.fuel = r.working_hours, r.fuel_l
            if r.working_hours < state.ref_hours or r.fuel_l < state.ref_fuel:
                state.ref_hours, state.ref_fuel = r.working_hours, r.fuel_l  # meter replaced
        self._dirty.add(device_id)

        fence = self._fences.get(device_id)
        if fence is None:
            fence = self._fences[device_id] = (self.rules.lease_of(device_id), self.rules.zones_for(device_id))
        lease, zones = fence
        active = self.book.active
        events: list[Alert] = []

        if previous_ts is not None and ts - previous_ts > self._idle_after and (device_id, "idle") not in active:
            # silent past the threshold but no sweep saw it (monitor down, fast replay):
            # record the episode now, with the same id the sweep would have given it
            failing, evidence = check_idle(self.rules, previous_ts, ts)
            if failing:
                event = self.book.observe(
                    device_id,
                    "idle",
                    True,
                    evidence=evidence,
                    lease_id=lease,
                    at=previous_ts + self._idle_after,
                    severity=self.rules.severity("idle"),
                )
                events.append(event)  # type: ignore[arg-type]
        if (device_id, "idle") in active:
            self._verdict(events, r, "idle", False, {"heard_at": ts.isoformat()}, lease)
        # verdicts that change nothing (passing, nothing open) skip building their evidence
        if not inside_geofence(zones, self._box, r.lat, r.lon) or (device_id, "geofence") in active:
            self._verdict(events, r, "geofence", *check_geofence(self.rules, device_id, r.lat, r.lon), lease)
        hours, litres = r.working_hours - state.ref_hours, r.fuel_l - state.ref_fuel
        if hours >= self._fuel_window:  # a fuel window is complete: judge it, start the next
            state.ref_hours, state.ref_fuel = r.working_hours, r.fuel_l
            if litres / hours > self._fuel_limit or (device_id, "fuel") in active:
                self._verdict(events, r, "fuel", *check_fuel(self.rules, hours, litres), lease)  # type: ignore[misc]
        if events:
            try:
                self.store.record_alerts(events)  # durable before the message is acknowledged
            except Exception:
                self._undo(r, before, events)  # so the broker's redelivery is judged afresh
                raise
        return events

    def _verdict(
        self, events: list[Alert], r: Telemetry, rule: str, failing: bool, evidence: dict, lease: str | None
    ) -> None:
        event = self.book.observe(
            r.device_id, rule, failing, at=r.ts, evidence=evidence, severity=self.rules.severity(rule), lease_id=lease
        )
        if event is not None:
            events.append(event)

    def _undo(self, r: Telemetry, before: tuple | None, events: list[Alert]) -> None:
        for event in reversed(events):
            key = (event.device_id, event.rule)
            if event.state == "raised":
                self.book.active.pop(key, None)
            else:
                self.book.active[key] = replace(event, state="raised", cleared_at=None)
        if before is None:
            self.devices.pop(r.device_id, None)
        else:
            state = self.devices[r.device_id]
            (state.last_ts, state.lat, state.lon, state.hours, state.fuel, state.ref_hours, state.ref_fuel) = before
            state.recent_set.discard(r.ts)
        self.stats["processed"] -= 1

    # the sweep ------------------------------------------------------------------------------
    def sweep(self, now: datetime | None = None) -> list[Alert]:
        """Raise idle alerts for devices silent longer than the threshold; flush state."""
        now = now or self.clock()
        events: list[Alert] = []
        threshold = self._idle_after
        with self.lock:
            active = self.book.active
            for device_id, state in self.devices.items():
                if now - state.last_ts <= threshold or (device_id, "idle") in active:
                    continue  # the common case, decided without building evidence
                failing, evidence = check_idle(self.rules, state.last_ts, now)
                if failing:
                    # the moment it became idle, so a replay yields the same alert id
                    event = self.book.observe(
                        device_id,
                        "idle",
                        True,
                        at=state.last_ts + threshold,
                        evidence=evidence,
                        severity=self.rules.severity("idle"),
                        lease_id=self.rules.lease_of(device_id),
                    )
                    if event is not None:
                        events.append(event)
            if events:
                self.store.record_alerts(events)
        self.flush()
        if events:
            self._emit(events)
        return events

    def flush(self) -> None:
        """Persist device snapshots and usage aggregates gathered since the last flush.

        The state is taken under the lock, but written outside it: a slow disk (an fsync on
        a busy box) then holds up this flush only, not the messages arriving meanwhile."""
        with self._flush_lock:
            with self.lock:
                if not self._dirty and not self._usage:
                    return
                snapshot = {
                    d: (s.last_ts, s.lat, s.lon, s.hours, s.fuel)
                    for d in self._dirty
                    if (s := self.devices.get(d)) is not None
                }
                taken = self._usage
                self._dirty, self._usage = set(), {}
            try:
                self.store.save_devices(snapshot, {(d, f"{y:04d}-{m:02d}"): u for (d, y, m), u in taken.items()})
            except Exception:
                with self.lock:  # keep it for the next flush
                    self._dirty.update(snapshot)
                    for key, u in taken.items():
                        newer = self._usage.get(key)
                        self._usage[key] = u if newer is None else u.merge(newer)
                raise

    def _emit(self, events: list[Alert]) -> None:
        for e in events:
            self.stats[f"alerts_{e.state}"] += 1
        if self.on_events is not None:
            self.on_events(events)
