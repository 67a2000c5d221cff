"""The socket under paho-mqtt: buffered reads, a PUBLISH fast path, and acks sent per burst.

paho reads every packet with three `recv` calls (the command byte, the remaining length byte
by byte, the body), builds an `MQTTMessage`, matches it against the subscriptions, and writes
every PUBACK with its own `send`, which on loopback also wakes the broker. That cost about
17-20 µs per message and capped a Python client near 0.55-0.64 of the C `mosquitto_sub`.

`FrameSocket` wraps the socket paho opens, so paho still does everything else: CONNECT and the
session flags, TLS, authentication, SUBSCRIBE, keepalive, DISCONNECT and the reconnects. The
network loop in `iot.mqtt` owns the kernel reads. It calls `pump()`, which reads up to 64 KiB at
once and splits the bytes into MQTT frames, in arrival order:

- a PUBLISH at QoS 0 or 1 goes to the `on_publish` handler with (topic, payload, qos, mid).
  The handler queues the PUBACK with `ack(mid)` only after it has stored what the message
  caused, so the durability rule of `MqttMonitor` is unchanged.
- Any other frame (CONNACK, SUBACK, PINGRESP, DISCONNECT, QoS 2) is handed to paho, in
  order, before the next frame is looked at. paho reads it through `recv()` from that buffer.

Writes, from paho and from `ack()`, go to one buffer that the loop `flush()`es once per burst
and on `close()`. An ack can therefore leave later than it was queued, never earlier. A crash
before the flush only makes the broker redeliver messages that are already stored, and the
monitor counts those as duplicates.

paho opens the socket and hands it to `FrameSocket` through
`federation.adapters.paho.WrappingClient`, the one place yinqi reaches into paho (its private
socket factory); `tests/iot/test_paho_adapter.py` pins it.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

READ_CHUNK = 65536
WRITE_LIMIT = 1 << 20  # bytes buffered before send() pushes back on paho (BlockingIOError)
LINGER = 2.0  # seconds a close waits for the broker to read our last acks
PUBLISH, PUBACK = 0x30, 0x40

OnPublish = Callable[[str, bytes, int, int], None]
"""(topic, payload, qos, mid): called for each PUBLISH at QoS 0 or 1, in arrival order."""


def _varint(buf: bytearray, i: int, end: int) -> tuple[int, int] | None:
    """MQTT variable byte integer at `buf[i:]`: (value, index after it); None if incomplete,
    (-1, i) if longer than the 4 bytes MQTT allows."""
    value, mult = 0, 1
    for k in range(i, min(i + 4, end)):
        byte = buf[k]
        value += (byte & 0x7F) * mult
        if byte < 0x80:
            return value, k + 1
        mult <<= 7
    return None if end < i + 4 else (-1, i)


class FrameSocket:
    """A socket (plain or TLS) that splits what it reads into MQTT frames; see the module doc."""

    def __init__(self, sock: Any, v5: bool = False) -> None:
        self._sock = sock
        self.v5 = v5
        self.on_publish: OnPublish | None = None
        self._raw = bytearray()  # read from the kernel, not yet split into frames
        self._paho = bytearray()  # whole frames waiting for paho's recv()
        self._out = bytearray()
        self._eof = False
        self.closed = False

    # reads ------------------------------------------------------------------------------------
    def pump(self, paho_read: Callable[[], Any]) -> int:
        """Read what has arrived and dispatch every complete frame; returns PUBLISH frames handled.

        `paho_read` is called (normally `client.loop_read`) whenever a frame is waiting for paho,
        and when the connection has ended, so that paho notices and runs its disconnect path."""
        try:
            while True:  # one kernel read; more only for what TLS has already decrypted
                data = self._sock.recv(READ_CHUNK)
                if not data:
                    self._eof = True
                    break
                self._raw += data
                if not self._ssl_pending():
                    break
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError:
            self._eof = True  # reset by the peer: paho sees the end of the stream and reconnects
        handled = self._dispatch(paho_read)
        if self._eof and not self.closed:
            paho_read()
        return handled

    def _dispatch(self, paho_read: Callable[[], Any]) -> int:
        raw, handled, pos, end = self._raw, 0, 0, len(self._raw)
        on_publish, v5 = self.on_publish, self.v5
        while pos < end and not self.closed:
            header = raw[pos]
            body = _varint(raw, pos + 1, end)
            if body is None:
                break  # the remaining length is incomplete
            if body[0] < 0:
                self._eof = True  # not MQTT: end the stream, paho reports the lost connection
                pos = end
                break
            length, i = body
            frame_end = i + length
            if frame_end > end:
                break  # the body is incomplete
            qos = (header >> 1) & 3
            if (
                header & 0xF0 == PUBLISH
                and qos < 2
                and on_publish is not None
                and length >= 2
                and i + 2 + ((raw[i] << 8) | raw[i + 1]) + (2 if qos else 0) <= frame_end
            ):
                tlen = (raw[i] << 8) | raw[i + 1]
                topic = raw[i + 2 : i + 2 + tlen].decode("utf-8", "replace")
                j = i + 2 + tlen
                mid = 0
                if qos:
                    mid = (raw[j] << 8) | raw[j + 1]
                    j += 2
                if v5:  # skip the properties: a varint length, then that many bytes
                    props = _varint(raw, j, frame_end)
                    j = frame_end if props is None or props[0] < 0 else props[1] + props[0]
                pos = frame_end
                on_publish(topic, bytes(raw[j:frame_end]), qos, mid)
                handled += 1
            else:  # not ours, or a PUBLISH too short for its own fields: paho judges it
                self._paho += raw[pos:frame_end]
                pos = frame_end
                while self._paho and not self.closed:
                    before = len(self._paho)
                    paho_read()
                    if len(self._paho) == before:
                        break  # paho did not take it: do not spin
        if not self.closed:
            del self._raw[:pos]
        return handled

    def _ssl_pending(self) -> int:
        pending = getattr(self._sock, "pending", None)
        return pending() if pending is not None else 0

    def recv(self, n: int) -> bytes:
        """paho's reads: only whole frames that `pump()` set aside for it."""
        if not self._paho:
            if self._eof:
                return b""
            raise BlockingIOError("no frame waiting for paho")
        chunk = bytes(self._paho[:n])
        del self._paho[:n]
        return chunk

    def pending(self) -> int:
        """Bytes readable now without waiting on the kernel (like `SSLSocket.pending()`)."""
        return len(self._paho) + self._ssl_pending()

    # writes -----------------------------------------------------------------------------------
    def ack(self, mid: int) -> None:
        """Queue the PUBACK of a QoS 1 message (valid under MQTT 3.1.1 and 5)."""
        self._out += bytes((PUBACK, 2, mid >> 8, mid & 0xFF))

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """paho's writes: accepted into the write buffer whole, or refused when it is full."""
        if len(self._out) >= WRITE_LIMIT and not self.flush():
            raise BlockingIOError("write buffer full")
        self._out += data
        return len(data)

    @property
    def unsent(self) -> int:
        return len(self._out)

    def flush(self) -> bool:
        """Write what the socket takes now without blocking; True when nothing is left."""
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            except OSError:
                self._eof = True  # broken pipe: `ended`, and paho's next read reports it
                self._out.clear()
                return False
            del self._out[:sent]
        return True

    @property
    def ended(self) -> bool:
        """The peer closed or reset the connection (paho has not necessarily noticed yet)."""
        return self._eof

    def close(self) -> None:
        """Write what is buffered (acks, DISCONNECT), then close gracefully.

        Closing at once is not enough: if the broker has not read our last acks yet and then
        writes to this socket, the kernel answers with a reset and the broker's kernel drops
        the unread acks. The broker then redelivers messages we already stored. So: send,
        half-close, and wait (at most `LINGER` s) for the broker to close its side, which it
        does after it has read everything, DISCONNECT included. What arrives meanwhile is
        unacknowledged and comes back on the next connection."""
        if self.closed:
            return
        self.closed = True
        try:
            self._sock.settimeout(LINGER)
            if self._out:
                self._sock.sendall(self._out)
            self._out.clear()
            if not self._eof:
                self._sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + LINGER
                while time.monotonic() < deadline and self._sock.recv(READ_CHUNK):
                    pass
        except (OSError, ValueError):
            pass  # unsent acks only mean redeliveries, which the monitor recognises
        self._sock.close()

    def __getattr__(self, name: str) -> Any:  # fileno, setblocking, setsockopt, getpeercert...
        return getattr(self._sock, name)
