"""Every place yinqi relies on paho-mqtt internals (non-public API), in one thin adapter.

Checked against paho-mqtt 2.2.0 (`CHECKED_PAHO`), the newest release; `tests/iot/test_paho_adapter.py`
pins the behaviour relied on, so an upgrade fails there first. There is one such place:

- **The socket paho reads from and writes to** (`WrappingClient`). paho 2.2 has no public way
  to supply or wrap the connection's socket: `on_socket_open` only *reports* the socket, and
  `Client._create_socket` (TCP or Unix socket, then TLS, then websockets) is the one factory that
  `connect()` and `reconnect()` call. The monitor's fast path (`iot.netbuf.FrameSocket`) must sit
  under paho, so that paho keeps doing CONNECT, TLS, authentication, SUBSCRIBE, keepalive and
  reconnects while PUBLISH frames and their acks skip paho's per-packet machinery. paho then only
  calls `recv`, `send`, `close`, `fileno`, `setblocking` and `pending` on what the factory returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion

CHECKED_PAHO = "2.2."

SocketWrapper = Callable[[Any, bool], Any]
"""(socket paho opened, is MQTT 5) -> the socket-like object paho should use instead."""


def paho_version() -> str:
    return str(paho.mqtt.__version__)


class WrappingClient(mqtt.Client):
    """paho's `Client`, except that every socket it opens first goes through `wrap_socket`.

    `wrap_socket` is None (the default) for paho's own behaviour. It is read when a connection is
    opened, so set it before `connect()` / `connect_async()`.
    """

    wrap_socket: SocketWrapper | None = None

    def _create_socket(self) -> Any:  # paho 2.0-2.2: the one socket factory (private)
        sock = super()._create_socket()
        if self.wrap_socket is None:
            return sock
        return self.wrap_socket(sock, self.protocol == MQTTProtocolVersion.MQTTv5)
