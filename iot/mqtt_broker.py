"""A small embedded MQTT 3.1.1 broker (asyncio) for the demo and single-machine use.

Mosquitto or EMQX belong in production: this broker keeps everything in memory (nothing
survives its own restart), has no authentication and no ACLs, and serves one event loop.
What it does implement, for paho and `mosquitto_pub/sub` clients:

- CONNECT / CONNACK with clean sessions and persistent ones (session present), the takeover of
  a session by a new connection with the same client id, will messages, and keep-alive (a
  client silent for 1.5 x its keep-alive is disconnected);
- SUBSCRIBE / SUBACK and UNSUBSCRIBE / UNSUBACK with `+` and `#` wildcards (granted QoS <= 1),
  retained messages;
- PUBLISH at QoS 0 and 1 with PUBACK (QoS 2 from a publisher is accepted with PUBREC /
  PUBCOMP and delivered at QoS 1); per session at most `max_inflight` unacknowledged QoS 1
  messages, the rest queued; QoS 1 messages a persistent session has not acknowledged are
  sent again, with DUP set, when it reconnects, and messages for an offline persistent session
  wait in its queue (up to `max_queued`; beyond that the oldest are dropped and logged);
- PINGREQ / PINGRESP and DISCONNECT.

A malformed packet, or a packet that breaks the protocol, closes that connection only.

amqtt was the embedded broker before: its 0.11 series pins typer 0.15.4, which breaks Flower's
own CLI (`flwr ls --help`), 0.12 needs a typer that flwr 1.42 refuses, and it kept nothing for
an anonymous persistent session that was offline.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from iot.errors import IotError

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
# packets whose fixed-header flags MQTT 3.1.1 fixes (section 2.2.2)
FIXED_FLAGS = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2, PUBACK: 0, PUBREC: 0, PUBCOMP: 0, PINGREQ: 0, DISCONNECT: 0}


class ProtocolError(Exception):
    """A packet that is malformed or not allowed here: its connection is closed."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


@dataclass
class Session:
    client_id: str
    clean: bool
    subscriptions: dict[str, int] = field(default_factory=dict)
    queue: deque[Message] = field(default_factory=deque)
    inflight: OrderedDict[int, Message] = field(default_factory=OrderedDict)  # mid -> sent, not acked
    qos2_in: set[int] = field(default_factory=set)  # QoS 2 ids received, PUBREL not yet seen
    connection: Connection | None = None
    next_mid: int = 0

    def mid(self) -> int:
        for _ in range(65535):
            self.next_mid = self.next_mid % 65535 + 1
            if self.next_mid not in self.inflight:
                return self.next_mid
        raise ProtocolError("no free packet identifier")


# ----- wire format ---------------------------------------------------------------------------------


def encode_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + encode_length(len(body)) + body


def utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


class Reader:
    """Fields of one packet body, in order; anything short or invalid is a `ProtocolError`."""

    def __init__(self, body: bytes) -> None:
        self.body, self.pos = body, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise ProtocolError("packet shorter than its fields")
        chunk = self.body[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        raw = self.binary()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None
        if "\x00" in value:
            raise ProtocolError("string contains U+0000")
        return value

    def rest(self) -> bytes:
        return self.take(len(self.body) - self.pos)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.body)


def valid_filter(topic_filter: str) -> bool:
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return bool(topic_filter)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching: `+` is one level, `#` the rest; `$...` topics only match literally."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


# ----- connections ---------------------------------------------------------------------------------


class Connection:
    """One client's TCP connection: reads packets, writes replies and deliveries."""

    def __init__(self, broker: MqttBroker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.broker, self.reader, self.writer = broker, reader, writer
        self.session: Session | None = None
        self.will: Message | None = None
        self.keepalive = 0
        self.peer = writer.get_extra_info("peername")

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    async def read_packet(self) -> tuple[int, int, bytes]:
        header = (await self.reader.readexactly(1))[0]
        length, multiplier = 0, 1
        for _ in range(4):
            byte = (await self.reader.readexactly(1))[0]
            length += (byte & 0x7F) * multiplier
            if byte < 0x80:
                break
            multiplier <<= 7
        else:
            raise ProtocolError("remaining length longer than 4 bytes")
        if length > self.broker.max_packet:
            raise ProtocolError(f"packet of {length} bytes exceeds the limit of {self.broker.max_packet}")
        body = await self.reader.readexactly(length) if length else b""
        return header >> 4, header & 0x0F, body

    async def serve(self) -> None:
        graceful = False
        try:
            kind, flags, body = await asyncio.wait_for(self.read_packet(), self.broker.connect_timeout)
            if kind != CONNECT or flags:
                raise ProtocolError("the first packet must be CONNECT")
            if not self.on_connect(Reader(body)):
                return
            while True:
                timeout = self.keepalive * 1.5 if self.keepalive else None
                kind, flags, body = await asyncio.wait_for(self.read_packet(), timeout)
                if kind == DISCONNECT:
                    graceful = True
                    return
                self.dispatch(kind, flags, Reader(body))
                await self.writer.drain()
        except ProtocolError as exc:
            log.info("closing %s: %s", self.peer, exc)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.broker.detach(self, graceful)
            self.close()

    def on_connect(self, r: Reader) -> bool:
        name, level, flags = r.text(), r.u8(), r.u8()
        if name != "MQTT" or level != 4:
            self.send(packet(CONNACK, 0, bytes([0, 1])))  # unacceptable protocol level
            return False
        if flags & 0x01:
            raise ProtocolError("reserved CONNECT flag set")
        clean, will_flag = bool(flags & 0x02), bool(flags & 0x04)
        will_qos, will_retain = (flags >> 3) & 3, bool(flags & 0x20)
        if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
            raise ProtocolError("invalid will flags")
        self.keepalive = r.u16()
        client_id = r.text()
        if will_flag:
            topic = r.text()
            if not topic or "+" in topic or "#" in topic:
                raise ProtocolError("invalid will topic")
            self.will = Message(topic, r.binary(), min(will_qos, 1), will_retain)
        if flags & 0x80:
            r.text()  # user name: accepted, not checked (no authentication in this broker)
        if flags & 0x40:
            r.binary()
        if not r.done:
            raise ProtocolError("bytes after the CONNECT payload")
        if not client_id:
            if not clean:
                self.send(packet(CONNACK, 0, bytes([0, 2])))  # identifier rejected
                return False
            client_id = f"auto-{id(self):x}"
        present = self.broker.attach(self, client_id, clean)
        self.send(packet(CONNACK, 0, bytes([int(present), 0])))
        self.broker.resume(self.session)  # type: ignore[arg-type]
        return True

    def dispatch(self, kind: int, flags: int, r: Reader) -> None:
        session = self.session
        if session is None:
            raise ProtocolError("session taken over by a newer connection")
        if kind in FIXED_FLAGS and flags != FIXED_FLAGS[kind]:
            raise ProtocolError(f"invalid flags {flags:#x} on packet type {kind}")
        if kind == PUBLISH:
            self.on_publish(flags, r)
        elif kind == PUBACK:
            mid = r.u16()
            if session.inflight.pop(mid, None) is not None:
                self.broker.fill(session)
        elif kind == PUBREL:
            mid = r.u16()
            session.qos2_in.discard(mid)
            self.send(packet(PUBCOMP, 0, mid.to_bytes(2, "big")))
        elif kind == SUBSCRIBE:
            self.on_subscribe(r)
        elif kind == UNSUBSCRIBE:
            mid = r.u16()
            if r.done:
                raise ProtocolError("UNSUBSCRIBE without a topic filter")
            while not r.done:
                session.subscriptions.pop(r.text(), None)
            self.send(packet(UNSUBACK, 0, mid.to_bytes(2, "big")))
        elif kind == PINGREQ:
            self.send(packet(PINGRESP, 0, b""))
        elif kind in (PUBREC, PUBCOMP):
            r.u16()  # the broker never sends QoS 2: nothing to do
        else:
            raise ProtocolError(f"packet type {kind} is not allowed from a client here")

    def on_publish(self, flags: int, r: Reader) -> None:
        qos, retain = (flags >> 1) & 3, bool(flags & 1)
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        topic = r.text()
        if not topic or "+" in topic or "#" in topic:
            raise ProtocolError("PUBLISH topic is empty or has a wildcard")
        mid = r.u16() if qos else 0
        message = Message(topic, r.rest(), min(qos, 1), retain)
        session = self.session
        assert session is not None
        if qos == 2:
            if mid not in session.qos2_in:  # else a resend: delivered already
                session.qos2_in.add(mid)
                self.broker.publish(message)
            self.send(packet(PUBREC, 0, mid.to_bytes(2, "big")))
            return
        self.broker.publish(message)
        if qos == 1:
            self.send(packet(PUBACK, 0, mid.to_bytes(2, "big")))

    def on_subscribe(self, r: Reader) -> None:
        session = self.session
        assert session is not None
        mid = r.u16()
        granted, new = [], []
        if r.done:
            raise ProtocolError("SUBSCRIBE without a topic filter")
        while not r.done:
            topic_filter, requested = r.text(), r.u8()
            if requested & 0xFC or requested == 3:
                raise ProtocolError("invalid requested QoS")
            if not valid_filter(topic_filter):
                granted.append(0x80)
                continue
            qos = min(requested, 1)
            session.subscriptions[topic_filter] = qos
            granted.append(qos)
            new.append(topic_filter)
        self.send(packet(SUBACK, 0, mid.to_bytes(2, "big") + bytes(granted)))
        self.broker.send_retained(session, new)


# ----- the broker ----------------------------------------------------------------------------------


class MqttBroker:
    """Sessions, routing and retained messages on one asyncio loop (see the module doc)."""

    def __init__(
        self,
        *,
        max_inflight: int = 100,
        max_queued: int = 1_000_000,
        max_packet: int = 1 << 20,
        connect_timeout: float = 10.0,
    ) -> None:
        self.max_inflight, self.max_queued, self.max_packet = max_inflight, max_queued, max_packet
        self.connect_timeout = connect_timeout
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self.dropped = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await Connection(self, reader, writer).serve()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def close_connections(self) -> None:
        """End every connection's task (broker shutdown); persistent sessions are dropped too."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def attach(self, connection: Connection, client_id: str, clean: bool) -> bool:
        """Bind a connection to its session; True when a stored session was resumed."""
        session = self.sessions.get(client_id)
        if session is not None and session.connection is not None:
            old = session.connection
            session.connection = None
            old.session = None
            self._publish_will(old)  # taken over: the old client did not say goodbye
            old.close()
        present = session is not None and not clean and not session.clean
        if not present:
            session = Session(client_id, clean)
            self.sessions[client_id] = session
        assert session is not None
        session.clean = clean
        session.connection = connection
        connection.session = session
        return present

    def resume(self, session: Session) -> None:
        """Send again what a reconnecting session had not acknowledged, then what waited."""
        connection = session.connection
        if connection is None:
            return
        for mid, message in session.inflight.items():
            connection.send(self._publish_packet(message, mid, dup=True))
        self.fill(session)

    def detach(self, connection: Connection, graceful: bool) -> None:
        session = connection.session
        if session is None:
            return  # taken over: the new connection owns the session
        session.connection = None
        if not graceful:
            self._publish_will(connection)
        if session.clean:
            self.sessions.pop(session.client_id, None)

    def _publish_will(self, connection: Connection) -> None:
        if connection.will is not None:
            will, connection.will = connection.will, None
            self.publish(will)

    def publish(self, message: Message) -> None:
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        for session in list(self.sessions.values()):
            qos = max((q for f, q in session.subscriptions.items() if matches(f, message.topic)), default=None)
            if qos is not None:
                self.deliver(session, Message(message.topic, message.payload, min(qos, message.qos)))

    def deliver(self, session: Session, message: Message) -> None:
        connection = session.connection
        if message.qos == 0:
            if connection is not None:
                connection.send(self._publish_packet(message, 0))
            return  # QoS 0 is not kept for an offline session
        if connection is not None and not session.queue and len(session.inflight) < self.max_inflight:
            mid = session.mid()
            session.inflight[mid] = message
            connection.send(self._publish_packet(message, mid))
            return
        if len(session.queue) >= self.max_queued:
            session.queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("session '%s' queue is full: dropped %d oldest message(s)", session.client_id, self.dropped)
        session.queue.append(message)

    def fill(self, session: Session) -> None:
        """Move queued messages into flight while the session has room."""
        connection = session.connection
        while connection is not None and session.queue and len(session.inflight) < self.max_inflight:
            message = session.queue.popleft()
            mid = session.mid()
            session.inflight[mid] = message
            connection.send(self._publish_packet(message, mid))

    def send_retained(self, session: Session, filters: list[str]) -> None:
        for message in list(self.retained.values()):
            qos = max((session.subscriptions[f] for f in filters if matches(f, message.topic)), default=None)
            if qos is not None and session.connection is not None:
                out = Message(message.topic, message.payload, min(qos, message.qos), retain=True)
                if out.qos:
                    mid = session.mid()
                    session.inflight[mid] = out
                    session.connection.send(self._publish_packet(out, mid))
                else:
                    session.connection.send(self._publish_packet(out, 0))

    @staticmethod
    def _publish_packet(message: Message, mid: int, dup: bool = False) -> bytes:
        body = utf8(message.topic) + (mid.to_bytes(2, "big") if message.qos else b"") + message.payload
        flags = (8 if dup else 0) | message.qos << 1 | int(message.retain)
        return packet(PUBLISH, flags, body)


class EmbeddedBroker:
    """`MqttBroker` listening on host:port in a background thread; a context manager.

    Port 0 picks a free port, read back in `port` once started."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, **options: float) -> None:
        self.host, self.port = host, port
        self.broker = MqttBroker(**options)  # type: ignore[arg-type]
        self.name = "embedded MQTT 3.1.1 broker (iot.mqtt_broker)"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="mqtt-broker", daemon=True)
        self._thread.start()
        self._ready.wait(15)
        if self._error is not None:
            raise IotError(f"embedded broker could not listen on {self.host}:{self.port}: {self._error}")
        if not self._ready.is_set():
            raise IotError(f"embedded broker did not start on {self.host}:{self.port} within 15 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def main() -> None:
            self._stopped = asyncio.Event()
            try:
                server = await asyncio.start_server(self.broker.handle, self.host, self.port)
            except OSError as exc:
                self._error = exc
                self._ready.set()
                return
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await self._stopped.wait()
                server.close()
                await self.broker.close_connections()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopped.set)
            except RuntimeError:
                pass  # the loop closed meanwhile
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
