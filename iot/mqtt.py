"""The paho-mqtt 2 side of the monitor: QoS 1, persistent session, reconnect with backoff.

A fixed client id with `clean_session=False` (MQTT 3.1.1) or `clean_start=False` plus a session
expiry (MQTT 5) makes the broker queue QoS 1 messages while the monitor is away. Messages are
acknowledged by hand, only after `Monitor.handle` has stored what they caused. PUBLISH frames
take the fast path of `iot.netbuf`, and the acks of one network read leave in one `send`.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from iot.errors import IotError
from iot.monitor import Monitor
from iot.telemetry import TOPIC_FILTER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker(url: str) -> BrokerAddress:
    """`mqtt://[user:pass@]host[:port]` or `mqtts://...` (TLS); a bare `host:port` works too."""
    if "://" not in url:
        url = "mqtt://" + url
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parsed.hostname:
        raise IotError(f"broker '{url}': expected mqtt://host:port or mqtts://host:port")
    tls = parsed.scheme in ("mqtts", "ssl")
    try:
        port = parsed.port or (8883 if tls else 1883)
    except ValueError:
        raise IotError(f"broker '{url}': port must be a number") from None
    return BrokerAddress(
        parsed.hostname,
        port,
        tls,
        unquote(parsed.username) if parsed.username else None,
        unquote(parsed.password) if parsed.password else None,
    )


class MqttMonitor:
    """Connects a `Monitor` to a broker and runs the idle sweep.

    Parameters
    ----------
    monitor : the core that validates, applies rules and stores.
    broker : broker URL (see `parse_broker`).
    client_id : fixed, so the broker can keep the session between connections.
    protocol : "3.1.1" or "5".
    ca_certs, certfile, keyfile : TLS material (TLS is on for mqtts:// or when ca_certs is set).
    username, password : override the ones in the URL.
    sweep_interval : seconds between idle sweeps (and state flushes).
    min_reconnect, max_reconnect : reconnect backoff bounds in seconds.
    """

    def __init__(
        self,
        monitor: Monitor,
        broker: str,
        *,
        client_id: str = "yinqi-iot-monitor",
        protocol: str = "3.1.1",
        ca_certs: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        username: str | None = None,
        password: str | None = None,
        sweep_interval: float = 1.0,
        min_reconnect: float = 0.5,
        max_reconnect: float = 30.0,
        keepalive: int = 30,
        session_expiry: int = 7 * 24 * 3600,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from iot.netbuf import FrameClient

        self.monitor = monitor
        self.address = parse_broker(broker)
        self.sweep_interval = sweep_interval
        self.keepalive = keepalive
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connections = 0
        self.errors = 0
        self._resync = False  # a message failed: skip the rest until the broker redelivers
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._network: threading.Thread | None = None
        self.min_reconnect, self.max_reconnect = min_reconnect, max_reconnect
        if protocol not in ("3.1.1", "5"):
            raise IotError(f"protocol '{protocol}': expected 3.1.1 or 5")
        self.v5 = protocol == "5"
        if self.v5:
            client = FrameClient(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
            self._connect_props = Properties(PacketTypes.CONNECT)
            self._connect_props.SessionExpiryInterval = session_expiry
        else:
            client = FrameClient(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
            self._connect_props = None
        user = username or self.address.username
        if user:
            client.username_pw_set(user, password if password is not None else self.address.password)
        if self.address.tls or ca_certs:
            client.tls_set(ca_certs=ca_certs, certfile=certfile, keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message  # QoS 2, or a frame the fast path left to paho
        client.on_publish_frame = self._on_publish_frame
        self.client = client

    # paho callbacks (network thread) --------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s refused the connection: %s", self.address.url, reason_code)
            return
        self.connections += 1
        self._resync = False
        self.connected.set()
        client.subscribe(TOPIC_FILTER, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.info("disconnected from %s (%s); reconnecting", self.address.url, reason_code)

    def _on_message(self, client, userdata, message) -> None:
        if self._resync:
            return  # after a failure: leave the rest unacknowledged so it comes back in order
        try:
            self.monitor.handle(message.topic, message.payload)
        except Exception:  # storage down: unacknowledged, so the broker redelivers it on reconnect
            self.errors += 1
            log.exception("could not process a message on %s; reconnecting for its redelivery", message.topic)
            self._resync = True
            client.disconnect()  # the session stays; the network loop reconnects with backoff
            return
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    def _on_publish_frame(self, topic: str, payload: bytes, qos: int, mid: int) -> None:
        """The fast path (`iot.netbuf`): same contract as `_on_message`, ack after storing."""
        if self._resync:
            return
        try:
            self.monitor.handle(topic, payload)
        except Exception:
            self.errors += 1
            log.exception("could not process a message on %s; reconnecting for its redelivery", topic)
            self._resync = True
            self.client.disconnect()  # writes the acks so far and DISCONNECT; the session stays
            return
        if qos:
            self.client.socket().ack(mid)

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> MqttMonitor:
        """Connect in the background (retrying until the broker answers) and start sweeping."""
        kwargs = {"clean_start": False, "properties": self._connect_props} if self.v5 else {}
        self.client.connect_async(self.address.host, self.address.port, keepalive=self.keepalive, **kwargs)
        self._network = threading.Thread(target=self._network_loop, name="iot-mqtt", daemon=True)
        self._network.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="iot-sweep", daemon=True)
        self._sweeper.start()
        return self

    def _network_loop(self) -> None:
        """paho's documented external-loop API (socket/loop_read/loop_write/loop_misc) with our
        own reconnect backoff, over the frame socket of `iot.netbuf`: one `recv` per 64 KiB,
        PUBLISH frames handled without paho's per-packet machinery, and the acks of a whole
        burst written in one `send`."""
        import select

        client, delay = self.client, self.min_reconnect
        while not self._stop.is_set():
            sock = client.socket()
            if sock is None:
                try:
                    client.reconnect()
                except (OSError, ValueError) as exc:  # refused, unreachable, TLS failure
                    log.info("broker %s not reachable (%s); retry in %.1f s", self.address.url, exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.max_reconnect)
                    continue
                delay = self.min_reconnect
                continue
            ready = sock.pending()
            want_write = client.want_write() or sock.unsent > 0
            try:
                readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 0 if ready else 0.2)
            except (OSError, ValueError):
                readable, writable = [], []
            if readable or ready:
                sock.pump(client.loop_read)
            if client.socket() is sock:
                if client.want_write():
                    client.loop_write()
                sock.flush()  # the acks of this burst, in one send
                if sock.ended and not sock.closed:
                    client.loop_read()  # paho reads the end of the stream and runs its disconnect
            client.loop_misc()
            if client.socket() is None and not self._stop.is_set():
                self._stop.wait(delay)  # lost the connection: back off before reconnecting
                delay = min(delay * 2, self.max_reconnect)
        if client.socket() is not None:
            client.disconnect()  # writes DISCONNECT at once (we are not in a callback)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval):
            try:
                self.monitor.sweep()
            except Exception:
                log.exception("idle sweep failed; will retry")

    def stop(self) -> None:
        """Disconnect cleanly (the broker keeps the session) and flush state."""
        self._stop.set()
        for thread in (self._sweeper, self._network):
            if thread is not None:
                thread.join(5)
        self.monitor.flush()
