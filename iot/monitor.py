"""The monitor's core, free of MQTT: telemetry in, alert events out, state kept durable.

`handle(topic, payload)` is called for every message (by the paho client in `iot.mqtt`, or
directly in tests); `sweep()` runs periodically and is the only place idleness is detected,
because idleness is the *absence* of messages. The clock is injectable.

No message can stop the monitor: a message that cannot be read, or whose judging fails, is
dead-lettered with its reason and the monitor moves on. Only a storage failure is handed back
(`StoreUnavailable`), so that the broker redelivers the message once storage works again; a
message whose alerts still cannot be stored after `store_attempts` tries is dead-lettered too.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from federation.clock import utcnow
from iot.alerts import Alert, AlertBook
from iot.formats import Format, TelemetryReader
from iot.rules import Rules, Zone, check_fuel, check_geofence, check_idle, inside_geofence
from iot.store import IotStore, Usage
from iot.telemetry import Rejected, Telemetry, topic_device

Clock = Callable[[], datetime]
utc_now = utcnow  # the wall clock, the default for every monitor

RECENT = 512  # timestamps remembered per device to recognise QoS 1 redeliveries
DEAD_LETTER_PAYLOAD = 65536  # bytes of a refused message kept with its reason


class StoreUnavailable(Exception):
    """The monitor's database refused a write: the message stays unacknowledged for redelivery."""


class EventClock:
    """The fleet's event time, for replays and simulations whose device time runs faster than
    the wall clock: the (lower) median of every device's newest reading.

    A median, not the newest timestamp seen, so that no single device (nor any minority of the
    fleet) can move the clock by what it claims: one reading dated 2099 once made every other
    device look idle."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime(1970, 1, 1, tzinfo=UTC)
        self._newest: dict[str, datetime] = {}

    def observe(self, device_id: str, ts: datetime) -> None:
        if ts > self._newest.get(device_id, self.start):
            self._newest[device_id] = ts

    def __call__(self) -> datetime:
        if not self._newest:
            return self.start
        times = sorted(self._newest.values())
        return max(self.start, times[(len(times) - 1) // 2])


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

    def remember(self, ts: datetime) -> None:
        if len(self.recent) == RECENT:
            self.recent_set.discard(self.recent[0])
        self.recent.append(ts)
        self.recent_set.add(ts)

    def forget_last(self, ts: datetime) -> None:
        if self.recent and self.recent[-1] == ts:
            self.recent.pop()
            self.recent_set.discard(ts)

    def restore(self, values: tuple[datetime, float, float, float, float, float, float]) -> None:
        (self.last_ts, self.lat, self.lon, self.hours, self.fuel, self.ref_hours, self.ref_fuel) = values


class Monitor:
    """Device state, rules and the alert lifecycle over one `IotStore`.

    Parameters
    ----------
    store : where alerts, the outbox, dead letters and device state are kept.
    rules : the rule set (see `iot.rules.load_rules`).
    clock : returns "now" (UTC, aware) for the idle sweep; `EventClock()` for replays.
    on_events : called with the alert events after they are stored (e.g. to wake delivery).
    formats : telemetry formats from a `telemetry.toml`, tried before the built-in ones.
    wall : the monitor's own clock, which device timestamps are checked against.
    store_attempts : how often a message whose alerts cannot be stored is retried (through the
        broker's redelivery) before it is dead-lettered.
    """

    def __init__(
        self,
        store: IotStore,
        rules: Rules,
        clock: Clock = utc_now,
        on_events: Callable[[list[Alert]], None] | None = None,
        *,
        formats: Iterable[Format] = (),
        wall: Clock = utc_now,
        store_attempts: int = 3,
    ) -> None:
        self.store, self.rules, self.clock, self.on_events = store, rules, clock, on_events
        self.reader = TelemetryReader(formats, rules.timestamps.bounds(), wall)
        self.store_attempts = store_attempts
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
        self._observe: Callable[[str, datetime], None] | None = getattr(clock, "observe", None)
        if self._observe is not None:
            for device_id, state in self.devices.items():
                self._observe(device_id, state.last_ts)
        # per-message constants, read once: pydantic attribute access is slow on the hot path
        self._box = rules.geofence.default
        self._fuel_window = rules.fuel.window_hours
        self._fuel_limit = rules.fuel.max_litres_per_hour
        self._fences: dict[str, tuple[str | None, list[Zone]]] = {}  # device -> (lease, zones)
        self._store_failures: dict[bytes, int] = {}  # message digest -> failed stores so far
        self.stats: Counter[str] = Counter()

    # messages -------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> list[Alert]:
        """Validate, update state, apply the rules; returns the alert events this caused.

        Every message ends stored (its effects) or dead-lettered (with the reason); only a
        storage failure raises (`StoreUnavailable`), leaving the message for redelivery."""
        self.stats["received"] += 1
        try:
            reading = self.reader.read(topic, payload)
        except Rejected as exc:
            self._dead_letter(topic, payload, exc.reason, exc.device_id)
            return []
        except Exception as exc:  # a bug must not stop alerting for the rest of the fleet
            self._dead_letter(topic, payload, f"could not be read: {_describe(exc)}", topic_device(topic))
            return []
        try:
            with self.lock:
                events = self._apply(reading)
        except StoreUnavailable as exc:
            if self._failed_to_store(topic, payload) < self.store_attempts:
                raise
            self._dead_letter(
                topic,
                payload,
                f"alerts could not be stored after {self.store_attempts} attempts: {exc}",
                reading.device_id,
            )
            return []
        except Exception as exc:
            self._dead_letter(topic, payload, f"could not be judged: {_describe(exc)}", reading.device_id)
            return []
        if self._store_failures:
            self._store_failures.pop(_digest(topic, payload), None)
        if events:
            self._emit(events)
        return events

    def _dead_letter(self, topic: str, payload: bytes, reason: str, device_id: str | None) -> None:
        if len(payload) > DEAD_LETTER_PAYLOAD:
            reason += f" (payload kept: first {DEAD_LETTER_PAYLOAD} of {len(payload)} bytes)"
        try:
            self.store.dead_letter(topic, payload[:DEAD_LETTER_PAYLOAD], reason, device_id)
        except Exception as exc:
            raise StoreUnavailable(f"dead letter not stored: {_describe(exc)}") from exc
        self.stats["dead_letters"] += 1

    def _failed_to_store(self, topic: str, payload: bytes) -> int:
        if len(self._store_failures) > 10_000:
            self._store_failures.clear()  # bounded: only ever a handful while storage flaps
        key = _digest(topic, payload)
        count = self._store_failures[key] = self._store_failures.get(key, 0) + 1
        if count >= self.store_attempts:
            del self._store_failures[key]
        return count

    def _apply(self, r: Telemetry) -> list[Alert]:
        """Judge one reading under the lock. Any failure undoes every change it made."""
        device_id, ts = r.device_id, r.ts
        state = self.devices.get(device_id)
        before = None
        if state is not None:
            if ts in state.recent_set or ts == state.last_ts:
                self.stats["duplicates"] += 1  # a QoS 1 redelivery
                return []
            if ts < state.last_ts:
                # QoS 1 does not keep order across reconnects: a late reading counts for usage,
                # but the rules judge the newest state only
                state.remember(ts)
                self._count_usage(r)
                self.stats["processed"] += 1
                self.stats["late"] += 1
                return []
            before = (state.last_ts, state.lat, state.lon, state.hours, state.fuel, state.ref_hours, state.ref_fuel)
        events: list[Alert] = []
        try:
            self._judge(r, state, events)
            if events:
                try:
                    self.store.record_alerts(events)  # durable before the message is acknowledged
                except Exception as exc:
                    raise StoreUnavailable(_describe(exc)) from exc
        except BaseException:
            self._undo(r, before, events)  # so a redelivery (or nothing, for a dead letter) is judged afresh
            raise
        key = (device_id, ts.year, ts.month)
        usage = self._usage.get(key)
        if usage is None:
            self._usage[key] = Usage(ts, r.working_hours, r.fuel_l, ts, r.working_hours, r.fuel_l)
        else:
            usage.add(ts, r.working_hours, r.fuel_l)
        self._dirty.add(device_id)
        if self._observe is not None:
            self._observe(device_id, ts)
        self.stats["processed"] += 1
        return events

    def _undo(
        self,
        r: Telemetry,
        before: tuple[datetime, float, float, float, float, float, float] | None,
        events: list[Alert],
    ) -> None:
        """Take back what judging `r` changed: each event is one change of the alert book."""
        active = self.book.active
        for event in reversed(events):
            key = (event.device_id, event.rule)
            if event.state == "raised":
                active.pop(key, None)
            else:
                active[key] = replace(event, state="raised", cleared_at=None)
        if before is None:
            self.devices.pop(r.device_id, None)
        else:
            state = self.devices[r.device_id]
            state.restore(before)
            state.forget_last(r.ts)

    def _judge(self, r: Telemetry, state: DeviceState | None, events: list[Alert]) -> None:
        """Apply the rules to `r`, appending the alert events to `events` as they happen."""
        device_id, ts = r.device_id, r.ts
        previous_ts = state.last_ts if state is not None else None
        if state is None:
            # a device's first reading is judged from commissioning (0 h, 0 L): its fuel per
            # working hour so far, which is what the seed's rule computed on every message
            state = DeviceState(ts, r.lat, r.lon, r.working_hours, r.fuel_l, 0.0, 0.0)
            self.devices[device_id] = state
        else:
            state.last_ts, state.lat, state.lon = ts, r.lat, r.lon
            state.hours, state.fuel = r.working_hours, r.fuel_l
            if r.working_hours < state.ref_hours or r.fuel_l < state.ref_fuel:
                state.ref_hours, state.ref_fuel = r.working_hours, r.fuel_l  # meter replaced
        recent = state.recent  # remember(ts), inline: this runs for every message
        if len(recent) == RECENT:
            state.recent_set.discard(recent[0])
        recent.append(ts)
        state.recent_set.add(ts)

        fence = self._fences.get(device_id)
        if fence is None:
            fence = self._fences[device_id] = (self.rules.lease_of(device_id), self.rules.zones_for(device_id))
        lease, zones = fence
        active = self.book.active

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
                if event is not None:
                    events.append(event)
        if (device_id, "idle") in active:
            self._verdict(events, r, "idle", False, {"heard_at": ts.isoformat()}, lease)
        # verdicts that change nothing (passing, nothing open) skip building their evidence
        if not inside_geofence(zones, self._box, r.lat, r.lon) or (device_id, "geofence") in active:
            self._verdict(events, r, "geofence", *check_geofence(self.rules, device_id, r.lat, r.lon), lease)
        hours, litres = r.working_hours - state.ref_hours, r.fuel_l - state.ref_fuel
        if hours >= self._fuel_window:  # a fuel window is complete: judge it, start the next
            state.ref_hours, state.ref_fuel = r.working_hours, r.fuel_l
            verdict = check_fuel(self.rules, hours, litres)
            if verdict is not None and (verdict[0] or (device_id, "fuel") in active):
                self._verdict(events, r, "fuel", *verdict, lease)

    def _count_usage(self, r: Telemetry) -> None:
        ts = r.ts
        key = (r.device_id, ts.year, ts.month)
        usage = self._usage.get(key)
        if usage is None:
            self._usage[key] = Usage(ts, r.working_hours, r.fuel_l, ts, r.working_hours, r.fuel_l)
        else:
            usage.add(ts, r.working_hours, r.fuel_l)

    def _verdict(
        self,
        events: list[Alert],
        r: Telemetry,
        rule: str,
        failing: bool,
        evidence: dict[str, Any],
        lease: str | None,
    ) -> None:
        event = self.book.observe(
            r.device_id, rule, failing, at=r.ts, evidence=evidence, severity=self.rules.severity(rule), lease_id=lease
        )
        if event is not None:
            events.append(event)

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
                try:
                    self.store.record_alerts(events)
                except BaseException:
                    for event in events:  # raised again by the next sweep
                        active.pop((event.device_id, event.rule), None)
                    raise
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


def _digest(topic: str, payload: bytes) -> bytes:
    return hashlib.blake2b(topic.encode() + b"\0" + payload, digest_size=16).digest()


def _describe(exc: BaseException) -> str:
    """`TypeName: first line of the message`, at most 300 characters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
