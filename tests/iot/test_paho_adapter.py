"""What `federation.adapters.paho` relies on in paho-mqtt, pinned: an upgrade fails here first.

paho 2.2 has no public way to supply the connection's socket; the adapter overrides the private
`Client._create_socket`. These tests check the version it was verified with, that the factory is
still where it was and is what `connect()`/`reconnect()` use, and that paho then does all of its
reading and writing through the object the factory returned.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from federation.adapters.paho import CHECKED_PAHO, WrappingClient, paho_version
from iot.mqtt_broker import EmbeddedBroker
from tests.iot.conftest import wait_for


def test_installed_paho_is_the_version_the_adapter_was_checked_against() -> None:
    assert paho_version().startswith(CHECKED_PAHO), (
        f"paho-mqtt {paho_version()} is installed; federation/adapters/paho.py was checked against "
        f"{CHECKED_PAHO}x: re-check the private socket factory, then update CHECKED_PAHO"
    )


def test_the_private_socket_factory_is_still_defined_on_client() -> None:
    assert "_create_socket" in vars(mqtt.Client)
    assert "_create_socket" in vars(WrappingClient)


class Recording:
    """A socket wrapper that records which of its methods paho calls."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.calls = sock, set()

    def __getattr__(self, name: str) -> Any:
        self.calls.add(name)
        return getattr(self.sock, name)


def test_every_connection_goes_through_the_wrapper_and_paho_reads_and_writes_only_through_it() -> None:
    wrapped: list[tuple[Recording, bool]] = []

    def wrap(sock: Any, v5: bool) -> Recording:
        wrapped.append((Recording(sock), v5))
        return wrapped[-1][0]

    with EmbeddedBroker(port=0) as broker:
        client = WrappingClient(CallbackAPIVersion.VERSION2, client_id="adapter-pin", protocol=mqtt.MQTTv311)
        client.wrap_socket = wrap
        got = threading.Event()
        client.on_message = lambda c, u, m: got.set()
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("pin/#", qos=1)

        def loop_until(condition, what: str) -> None:  # paho's loop in this thread: no races
            wait_for(lambda: client.loop(0.05) is not None and condition(), 10, what)

        client.connect(broker.host, broker.port)
        try:
            loop_until(client.is_connected, "the connection")
            assert client.socket() is wrapped[0][0] and wrapped[0][1] is False
            client.publish("pin/a", b"x", qos=1)
            loop_until(got.is_set, "the message back")
            client.reconnect()
            loop_until(client.is_connected, "the reconnection")
            assert len(wrapped) == 2 and client.socket() is wrapped[1][0]
        finally:
            client.disconnect()
    first = wrapped[0][0]
    assert {"recv", "send", "setblocking", "close"} <= first.calls
    assert client.socket() is None


def test_without_a_wrapper_paho_behaves_as_shipped() -> None:
    with EmbeddedBroker(port=0) as broker:
        client = WrappingClient(CallbackAPIVersion.VERSION2, client_id="adapter-plain")
        client.connect(broker.host, broker.port)
        try:
            assert type(client.socket()).__name__ == "socket"
        finally:
            client.disconnect()
