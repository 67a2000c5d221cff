"""The embedded MQTT 3.1.1 broker (`iot.mqtt_broker`), driven by paho and by raw sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from iot.monitor import Monitor
from iot.mqtt import MqttMonitor
from iot.mqtt_broker import CONNACK, PINGRESP, PUBLISH, SUBACK, EmbeddedBroker, matches, packet, utf8
from iot.rules import Rules
from tests.iot.conftest import FakeClock, Publisher, reading, wait_for


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=0) as running:
        yield running


class Subscriber:
    """A paho subscriber that records (topic, payload) of what it receives."""

    def __init__(self, broker: EmbeddedBroker, client_id: str, topics: list[str], clean: bool = False) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.session_present: list[bool] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.set()

        def on_connect(c, u, flags, rc, p) -> None:
            self.session_present.append(flags.session_present)
            c.subscribe([(t, 1) for t in topics])

        self.client.on_connect = on_connect
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Raw:
    """A hand-written MQTT client on a plain socket, for what paho would never send."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.sock = socket.create_connection((broker.host, broker.port), timeout=5)
        self.buffer = b""

    def connect(self, client_id: str, clean: bool = True, keepalive: int = 60) -> bytes:
        flags = 0x02 if clean else 0
        body = utf8("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big") + utf8(client_id)
        self.sock.sendall(packet(1, 0, body))
        return self.read()

    def read(self) -> bytes:
        """One whole packet (b'' when the broker closed the connection)."""
        while True:
            if len(self.buffer) >= 2:
                length, i, mult = 0, 1, 1
                while i < len(self.buffer):
                    byte = self.buffer[i]
                    length += (byte & 0x7F) * mult
                    i += 1
                    if byte < 0x80:
                        break
                    mult <<= 7
                if len(self.buffer) >= i + length and (i == 1 or self.buffer[i - 1] < 0x80):
                    frame, self.buffer = self.buffer[: i + length], self.buffer[i + length :]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk

    def closed_by_broker(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.read() == b""
        except ConnectionResetError:
            return True


def test_the_monitor_gets_qos1_through_the_embedded_broker(store, broker) -> None:
    monitor = Monitor(store, Rules(), clock=FakeClock())
    client = MqttMonitor(monitor, broker.url, client_id="embedded-monitor", sweep_interval=0.05).start()
    publisher = Publisher(broker.url)
    try:
        client.wait_connected(30)
        for i in range(300):
            publisher.reading(reading(f"exc-{i % 3}", i, lon=125.0 if i == 150 else 115.0))
        wait_for(lambda: monitor.stats["processed"] == 300, 20, "300 messages through the embedded broker")
        wait_for(publisher.all_acked, 10, "the broker to acknowledge every publish")
    finally:
        publisher.close()
        client.stop()
    assert [(a.rule, a.state) for a in store.alerts()] == [("geofence", "cleared")]


def test_a_persistent_session_keeps_qos1_messages_while_the_subscriber_is_away(broker) -> None:
    first = Subscriber(broker, "away", ["device/+/data"])
    first.close()
    publisher = Publisher(broker.url)
    try:
        for i in range(50):
            publisher.send("device/exc-1/data", str(i).encode())
        wait_for(publisher.all_acked, 10, "the broker to take the messages")
    finally:
        publisher.close()
    again = Subscriber(broker, "away", ["device/+/data"])
    try:
        wait_for(lambda: len(again.got) == 50, 10, "the queued messages")
    finally:
        again.close()
    assert again.session_present == [True]
    assert [p for _, p in again.got] == [str(i).encode() for i in range(50)]


def test_unacknowledged_qos1_messages_are_sent_again_with_dup_to_a_reconnecting_session(broker) -> None:
    raw = Raw(broker)
    assert raw.connect("forgetful", clean=False) == packet(CONNACK, 0, b"\x00\x00")
    raw.sock.sendall(packet(8, 2, (1).to_bytes(2, "big") + utf8("device/+/data") + b"\x01"))
    assert raw.read()[0] >> 4 == SUBACK
    publisher = Publisher(broker.url)
    try:
        for i in range(3):
            publisher.send(f"device/d{i}/data", b"m%d" % i)
        first = [raw.read() for _ in range(3)]  # received, never acknowledged
    finally:
        publisher.close()
    raw.sock.close()
    assert all(p[0] == PUBLISH << 4 | 2 for p in first)  # QoS 1, no DUP

    again = Raw(broker)
    assert again.connect("forgetful", clean=False) == packet(CONNACK, 0, b"\x01\x00")  # session present
    resent = [again.read() for _ in range(3)]
    assert all(p[0] == PUBLISH << 4 | 8 | 2 for p in resent)  # DUP set
    assert [p[1:] for p in resent] == [p[1:] for p in first]  # same ids, topics and payloads
    for p in resent:
        mid = p[2 + 2 + int.from_bytes(p[2:4], "big") : 2 + 4 + int.from_bytes(p[2:4], "big")]
        again.sock.sendall(packet(4, 0, mid))
    again.sock.sendall(packet(14, 0, b""))  # DISCONNECT: the broker has read the acks when it closes
    assert again.closed_by_broker()

    third = Raw(broker)
    assert third.connect("forgetful", clean=False) == packet(CONNACK, 0, b"\x01\x00")
    third.sock.sendall(packet(12, 0, b""))  # PINGREQ: the answer comes before any PUBLISH would
    assert third.read() == packet(PINGRESP, 0, b"")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("device/+/data", "device/exc-1/data", True),
        ("device/+/data", "device/exc-1/status", False),
        ("device/+/data", "device/a/b/data", False),
        ("device/#", "device", True),
        ("device/#", "device/a/b/c", True),
        ("+/+", "a/b", True),
        ("+", "$SYS/x", False),
        ("#", "$SYS/x", False),
        ("a/+/c/#", "a/b/c", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


def test_wildcard_subscriptions_route_each_message_once(broker) -> None:
    data = Subscriber(broker, "data", ["device/+/data"], clean=True)
    everything = Subscriber(broker, "all", ["device/#", "device/+/data"], clean=True)  # overlapping
    publisher = Publisher(broker.url)
    try:
        for topic in ("device/a/data", "device/b/status", "device/a/b/data", "other/a/data"):
            publisher.send(topic, topic.encode())
        wait_for(publisher.all_acked, 10, "the publishes")
        wait_for(lambda: len(everything.got) == 3, 10, "the device/# messages")
    finally:
        publisher.close()
        data.close()
        everything.close()
    assert [t for t, _ in data.got] == ["device/a/data"]
    assert [t for t, _ in everything.got] == ["device/a/data", "device/b/status", "device/a/b/data"]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x30\xff\xff\xff\xff\x01",  # remaining length of 5 bytes
        packet(3, 0, b"\x00\x10short"),  # PUBLISH shorter than its topic
        packet(3, 6, utf8("a/b") + b"\x00\x01"),  # QoS 3
        packet(8, 0, (1).to_bytes(2, "big") + utf8("a") + b"\x01"),  # SUBSCRIBE with wrong flags
        packet(3, 0, utf8("a/+/c")),  # PUBLISH to a wildcard
        packet(2, 0, b"\x00\x00"),  # CONNACK from a client
        packet(3, 0, b"\x00\x02\xff\xfe"),  # topic not UTF-8
    ],
)
def test_a_malformed_packet_closes_only_its_connection(broker, garbage: bytes) -> None:
    listener = Subscriber(broker, "bystander", ["device/+/data"], clean=True)
    publisher = Publisher(broker.url)
    try:
        bad = Raw(broker)
        bad.connect("hostile")
        bad.sock.sendall(garbage)
        assert bad.closed_by_broker()
        publisher.send("device/ok/data", b"still routed")
        wait_for(lambda: listener.got == [("device/ok/data", b"still routed")], 10, "the bystander's message")
    finally:
        publisher.close()
        listener.close()


def test_a_client_must_connect_first_and_speak_mqtt_3_1_1(broker) -> None:
    before = Raw(broker)
    before.sock.sendall(packet(12, 0, b""))  # PINGREQ before CONNECT
    assert before.closed_by_broker()
    v5 = Raw(broker)
    v5.sock.sendall(packet(1, 0, utf8("MQTT") + bytes([5, 2]) + b"\x00\x3c\x00" + utf8("x")))
    assert v5.read() == packet(CONNACK, 0, b"\x00\x01")  # unacceptable protocol level


def test_a_silent_client_is_dropped_after_one_and_a_half_keepalives(broker) -> None:
    raw = Raw(broker)
    raw.connect("sleepy", keepalive=1)
    raw.sock.sendall(packet(12, 0, b""))
    assert raw.read() == packet(PINGRESP, 0, b"")
    started = time.monotonic()
    assert raw.closed_by_broker(timeout=5)
    assert 1.0 <= time.monotonic() - started < 4.0


def test_a_new_connection_takes_over_the_session_of_the_same_client_id(broker) -> None:
    first = Raw(broker)
    first.connect("twin", clean=False)
    second = Raw(broker)
    assert second.connect("twin", clean=False) == packet(CONNACK, 0, b"\x01\x00")
    assert first.closed_by_broker()


def test_a_clean_session_forgets_what_the_previous_one_subscribed(broker) -> None:
    first = Subscriber(broker, "cleaned", ["device/+/data"])
    first.close()
    publisher = Publisher(broker.url)
    try:
        publisher.send("device/a/data", b"x")
        wait_for(publisher.all_acked, 10, "the publish")
    finally:
        publisher.close()
    raw = Raw(broker)
    assert raw.connect("cleaned", clean=True) == packet(CONNACK, 0, b"\x00\x00")
    raw.sock.sendall(packet(12, 0, b""))
    assert raw.read() == packet(PINGRESP, 0, b"")  # nothing queued came first
