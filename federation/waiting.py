"""Waiting for something to become true, and finding a free port: for harnesses and services.

Readiness is polled, never slept for a fixed time: `wait_until` returns as soon as the
condition holds and raises with a message saying what did not happen.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on (or holds) `host:port`: a plain bind fails.

    gRPC servers bind with SO_REUSEPORT, so a second server on a taken port would start
    and share it silently; checking first turns that into a clear refusal."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed bank's TIME_WAIT is not "taken"
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
    error: Callable[[str], Exception] = TimeoutError,
) -> T:
    """Poll `condition` until it returns something truthy (returned) or `timeout` seconds pass
    (raises `error("... did not happen within N s")`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)
