"""The paho-mqtt 2 side of the monitor: QoS 1, persistent session, reconnect with backoff.

A fixed client id with `clean_session=False` (MQTT 3.1.1) or `clean_start=False` plus a session
expiry (MQTT 5) makes the broker queue QoS 1 messages while the monitor is away. Messages are
acknowledged by hand, only after `Monitor.handle` has stored what they caused. PUBLISH frames
take the fast path of `iot.netbuf`, and the acks of one network read leave in one `send`.

A `MonitorLease` (when given) makes sure one monitor runs per session; `stop()` (SIGTERM in
the CLI) drains: what was read is handled, its acks are written with DISCONNECT, state flushed.
"""

from __future__ import annotations

import logging
import select
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from iot.errors import IotError
from iot.lease import MonitorLease
from iot.netbuf import FrameSocket
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
    if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parsed.hostname or len(url) > 2000:
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


class Core(Protocol):
    """What the MQTT side needs of the monitor (`iot.monitor.Monitor`, or a no-op in benches)."""

    def handle(self, topic: str, payload: bytes) -> Any: ...

    def sweep(self) -> Any: ...

    def flush(self) -> None: ...


SESSION_TAKEN_OVER = 142  # MQTT 5 reason code of a DISCONNECT sent because another client took the id


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
    lease : held while running, so that a second monitor of the same session is refused.
    """

    def __init__(
        self,
        monitor: Core,
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
        lease: MonitorLease | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from federation.adapters.paho import WrappingClient

        if protocol not in ("3.1.1", "5"):
            raise IotError(f"--protocol '{protocol}': expected 3.1.1 or 5")
        if not client_id or len(client_id) > 128:
            raise IotError(f"--client-id '{client_id[:40]}': expected 1 to 128 characters")
        self.monitor = monitor
        self.address = parse_broker(broker)
        self.client_id = client_id
        self.sweep_interval = sweep_interval
        self.keepalive = keepalive
        self.lease = lease
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.stopped = threading.Event()  # set by stop(), or when the monitor must end (`failure`)
        self.connections = 0
        self.errors = 0
        self.last_error: str | None = None  # why the broker could not be reached, or refused us
        self.failure: str | None = None  # why the monitor stopped on its own
        self._resync = False  # a message failed: skip the rest until the broker redelivers
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._network: threading.Thread | None = None
        self.min_reconnect, self.max_reconnect = min_reconnect, max_reconnect
        self.v5 = protocol == "5"
        self._connect_props: Properties | None = None
        if self.v5:
            client = WrappingClient(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
            self._connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            self._connect_props.SessionExpiryInterval = session_expiry
        else:
            client = WrappingClient(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
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
        client.wrap_socket = self._frame_socket
        self.client = client

    def _frame_socket(self, sock: Any, v5: bool) -> FrameSocket:
        framed = FrameSocket(sock, v5=v5)
        framed.on_publish = self._on_publish_frame
        return framed

    # paho callbacks (network thread) --------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.last_error = f"refused the connection: {reason_code}"
            log.warning("broker %s refused the connection: %s", self.address.url, reason_code)
            return
        self.connections += 1
        self._resync = False
        self.last_error = None
        self.connected.set()
        client.subscribe(TOPIC_FILTER, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.connected.clear()
        if self.v5 and getattr(reason_code, "value", None) == SESSION_TAKEN_OVER and not self._stop.is_set():
            self._fail(
                f"broker {self.address.url} handed session '{self.client_id}' to another client with the same "
                "client id; stopping so that the two do not take turns (give each monitor its own --client-id)"
            )
            return
        if not self._stop.is_set():
            log.info("disconnected from %s (%s); reconnecting", self.address.url, reason_code)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self._handled(message.topic, message.payload) and message.qos > 0:
            client.ack(message.mid, message.qos)

    def _on_publish_frame(self, topic: str, payload: bytes, qos: int, mid: int) -> None:
        """The fast path (`iot.netbuf`): same contract as `_on_message`, ack after storing."""
        if self._handled(topic, payload) and qos:
            sock = self.client.socket()
            if isinstance(sock, FrameSocket):
                sock.ack(mid)

    def _handled(self, topic: str, payload: bytes) -> bool:
        """Hand one message to the monitor; False when it must stay unacknowledged.

        The monitor dead-letters what it cannot read or judge, so only a storage failure gets
        here: the message and the rest of this burst stay unacknowledged, and a reconnect makes
        the broker redeliver them in order."""
        if self._resync:
            return False
        try:
            self.monitor.handle(topic, payload)
        except Exception:
            self.errors += 1
            log.exception("could not store what a message on %s caused; reconnecting for its redelivery", topic)
            self._resync = True
            self.client.disconnect()  # writes the acks so far and DISCONNECT; the session stays
            return False
        return True

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> MqttMonitor:
        """Take the lease, connect in the background (retrying until the broker answers), sweep."""
        if self.lease is not None:
            self.lease.acquire()
        kwargs: dict[str, Any] = {"clean_start": False, "properties": self._connect_props} if self.v5 else {}
        self.client.connect_async(self.address.host, self.address.port, keepalive=self.keepalive, **kwargs)
        self._network = threading.Thread(target=self._network_loop, name="iot-mqtt", daemon=True)
        self._network.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="iot-sweep", daemon=True)
        self._sweeper.start()
        return self

    def wait_connected(self, timeout: float) -> None:
        """Return once subscribed; `IotError` naming the broker when it does not answer in time."""
        if self.subscribed.wait(timeout):
            return
        why = f" ({self.last_error})" if self.last_error else ""
        raise IotError(f"broker {self.address.url}: not reachable within {timeout:g} s{why}")

    def _network_loop(self) -> None:
        """paho's documented external-loop API (socket/loop_read/loop_write/loop_misc) with our
        own reconnect backoff, over the frame socket of `iot.netbuf`: one `recv` per 64 KiB,
        PUBLISH frames handled without paho's per-packet machinery, and the acks of a whole
        burst written in one `send`."""
        client, delay = self.client, self.min_reconnect
        while not self._stop.is_set():
            sock = client.socket()
            if not isinstance(sock, FrameSocket):
                try:
                    client.reconnect()
                except (OSError, ValueError) as exc:  # refused, unreachable, TLS failure
                    self.last_error = str(exc) or type(exc).__name__
                    log.info("broker %s not reachable (%s); retry in %.1f s", self.address.url, exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.max_reconnect)
                    continue
                delay = self.min_reconnect
                continue
            ready = sock.pending()
            want_write = client.want_write() or sock.unsent > 0
            try:
                readable, _, _ = select.select([sock], [sock] if want_write else [], [], 0 if ready else 0.2)
            except (OSError, ValueError):
                readable = []
            if readable or ready:
                sock.pump(client.loop_read)
            still_open = client.socket() is sock  # (a bool: `is` would narrow sock's type)
            if still_open:
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
            client.disconnect()  # writes the last acks and DISCONNECT at once (not in a callback)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval):
            try:
                self.monitor.sweep()
            except Exception:
                log.exception("idle sweep failed; will retry")
            if self.lease is not None and self.lease.due():
                try:
                    kept = self.lease.renew()
                except Exception:
                    log.exception("could not renew the monitor's lease; will retry")
                    continue
                if not kept:
                    self._fail(
                        f"another monitor took over session '{self.lease.name}' while this one could not "
                        "renew its lease; stopping"
                    )

    def _fail(self, why: str) -> None:
        log.error("%s", why)
        self.failure = why
        self._stop.set()
        self.stopped.set()

    def stop(self) -> None:
        """Drain and disconnect: what was read is handled and acknowledged, the session stays
        at the broker, state is flushed and the lease released."""
        self._stop.set()
        for thread in (self._sweeper, self._network):
            if thread is not None and thread is not threading.current_thread():
                thread.join(10)
        try:
            self.monitor.flush()
        finally:
            if self.lease is not None:
                self.lease.release()  # only if still ours
            self.stopped.set()
