"""The frame socket under paho (`iot.netbuf`): framing, batched acks, and ack-after-commit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from iot.netbuf import FrameSocket
from iot.rules import Rules
from tests.iot.conftest import FakeClock, reading, wait_for

ROOT = Path(__file__).resolve().parents[2]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def frame(header: int, body: bytes) -> bytes:
    return bytes([header]) + varint(len(body)) + body


def publish(topic: str, payload: bytes, mid: int = 0, qos: int = 1, props: bytes | None = None) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode()
    if qos:
        body += mid.to_bytes(2, "big")
    if props is not None:
        body += varint(len(props)) + props
    return frame(0x30 | qos << 1, body + payload)


@pytest.fixture
def pair():
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    fs = FrameSocket(ours)
    seen: list[tuple] = []
    fs.on_publish = lambda topic, payload, qos, mid: seen.append(("publish", topic, payload, qos, mid))
    yield fs, broker, seen
    broker.close()
    ours.close()


def test_frames_split_at_any_byte_reach_the_handler_and_paho_in_arrival_order(pair) -> None:
    fs, broker, seen = pair
    big = b"x" * 300  # a two-byte remaining length
    suback = frame(0x90, b"\x00\x01\x01")
    stream = (
        publish("device/a/data", b"{}", mid=1)
        + suback
        + publish("device/b/data", big, mid=2)
        + publish("device/c/data", b"q0", qos=0)
    )

    def paho_read() -> None:
        seen.append(("paho", fs.recv(1 << 16)))

    for i in range(len(stream)):  # the worst case: one byte per read
        broker.send(stream[i : i + 1])
        fs.pump(paho_read)
    assert seen == [
        ("publish", "device/a/data", b"{}", 1, 1),
        ("paho", suback),
        ("publish", "device/b/data", big, 1, 2),
        ("publish", "device/c/data", b"q0", 0, 0),
    ]


def test_mqtt5_publish_properties_are_skipped() -> None:
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    fs = FrameSocket(ours, v5=True)
    seen: list[tuple] = []
    fs.on_publish = lambda *args: seen.append(args)
    props = b"\x01\x01" + b"\x03\x00\x10application/json"  # payload format indicator, content type
    broker.send(publish("device/a/data", b'{"k":1}', mid=513, props=props) + publish("t", b"", mid=2, props=b""))
    fs.pump(lambda: None)
    assert seen == [("device/a/data", b'{"k":1}', 1, 513), ("t", b"", 1, 2)]
    broker.close()
    ours.close()


def test_acks_and_paho_writes_leave_together_only_on_flush(pair) -> None:
    fs, broker, _ = pair
    broker.setblocking(False)
    fs.ack(0x1234)
    fs.send(b"\xc0\x00")  # a PINGREQ written by paho
    with pytest.raises(BlockingIOError):
        broker.recv(100)  # nothing on the wire yet
    assert fs.flush() is True
    assert broker.recv(100) == b"\x40\x02\x12\x34\xc0\x00"


def test_close_writes_what_is_buffered_and_waits_for_the_broker_to_read_it(pair) -> None:
    fs, broker, _ = pair
    received = bytearray()

    def broker_side() -> None:  # reads everything, then closes, as Mosquitto does after DISCONNECT
        while chunk := broker.recv(100):
            received.extend(chunk)
        broker.close()

    thread = threading.Thread(target=broker_side)
    thread.start()
    fs.ack(7)
    fs.send(b"\xe0\x00")  # DISCONNECT
    fs.close()
    thread.join(5)
    assert bytes(received) == b"\x40\x02\x00\x07\xe0\x00"


def test_the_end_of_the_stream_is_handed_to_paho(pair) -> None:
    fs, broker, _ = pair
    reads: list[bytes] = []
    broker.close()
    fs.pump(lambda: reads.append(fs.recv(1)))
    assert reads == [b""]
    assert fs.ended


CRASHER = """
import os, sys, threading
from iot.monitor import EventClock, Monitor
from iot.mqtt import MqttMonitor
from iot.rules import Rules
from iot.store import IotStore

store = IotStore(sys.argv[1])
store.record_alerts = lambda events: os._exit(17)  # the process dies before the commit
monitor = Monitor(store, Rules(), clock=EventClock())
MqttMonitor(monitor, sys.argv[2], client_id="crashy", sweep_interval=0.05).start()
threading.Event().wait(30)
os._exit(3)  # not reached when the crash happens
"""


@pytest.mark.mosquitto
def test_a_crash_before_the_commit_means_the_message_is_redelivered(mosquitto, store, publisher) -> None:
    from iot.monitor import Monitor
    from iot.mqtt import MqttMonitor

    def client(core: Monitor) -> MqttMonitor:
        return MqttMonitor(core, mosquitto.url, client_id="crashy", sweep_interval=0.05, min_reconnect=0.1).start()

    first = client(Monitor(store, Rules(), clock=FakeClock()))  # create the persistent session
    wait_for(first.subscribed.is_set, 10, "the session")
    assert isinstance(first.client.socket(), FrameSocket)
    first.stop()
    for i in range(200):  # message 150 leaves the geofence (an alert to store), 151 comes back
        publisher.reading(reading("exc-1", i, lon=125.0 if i == 150 else 115.0))
    wait_for(publisher.all_acked, 10, "the broker to take the messages")

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHER, str(store.engine.url), mosquitto.url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode == 17, crashed.stderr.decode()[-2000:]
    assert store.alerts() == []  # nothing was committed

    second = Monitor(store, Rules(), clock=FakeClock())
    restarted = client(second)
    try:
        wait_for(lambda: second.stats["alerts_cleared"] == 1, 15, f"the redelivery (stats {dict(second.stats)})")
    finally:
        restarted.stop()
    assert [(a.rule, a.state) for _, a in store.pending()] == [("geofence", "raised"), ("geofence", "cleared")]


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (cryptography, EC P-256)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key, issuer: str, signer, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    files[0].write_bytes(
        cert("yinqi-test-ca", ca_key, "yinqi-test-ca", ca_key, ca=True).public_bytes(serialization.Encoding.PEM)
    )
    files[1].write_bytes(
        cert("127.0.0.1", key, "yinqi-test-ca", ca_key, ca=False).public_bytes(serialization.Encoding.PEM)
    )
    files[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.mark.mosquitto
def test_the_fast_path_works_over_tls(tmp_path, store) -> None:
    import ssl

    from paho.mqtt.enums import CallbackAPIVersion

    from iot.broker import Mosquitto
    from iot.monitor import Monitor
    from iot.mqtt import MqttMonitor
    from tests.conftest import free_port, require_binary

    ca, certfile, keyfile = _tls_files(tmp_path)
    with Mosquitto(
        free_port(), tmp_path / "mosquitto", binary=require_binary("mosquitto"), tls=(ca, certfile, keyfile)
    ) as broker:
        monitor = Monitor(store, Rules(), clock=FakeClock())
        client = MqttMonitor(monitor, broker.url, ca_certs=str(ca), client_id="tls", sweep_interval=0.05).start()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-pub")
        pub.tls_set(ca_certs=str(ca))
        try:
            wait_for(client.subscribed.is_set, 10, "the subscription over TLS")
            assert isinstance(client.client.socket()._sock, ssl.SSLSocket)
            pub.connect(broker.host, broker.port)
            pub.loop_start()
            for i in range(1000):  # enough to fill several TLS records per read
                r = reading("exc-1", i, lon=125.0 if i == 500 else 115.0)
                pub.publish(f"device/{r.device_id}/data", r.to_payload(), qos=1)
            wait_for(lambda: monitor.stats["processed"] == 1000, 15, f"every message (stats {dict(monitor.stats)})")
        finally:
            pub.disconnect()
            pub.loop_stop()
            client.stop()
    assert [(a.rule, a.state) for _, a in store.pending()] == [("geofence", "raised"), ("geofence", "cleared")]
