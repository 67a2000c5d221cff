"""Brokers to run beside the monitor: an embedded amqtt broker (demo) and a Mosquitto process
(tests, benchmarks, `yinqi iot broker --mosquitto`).

amqtt 0.11.4 delivers QoS 1 to connected paho clients, but keeps nothing across its own
restarts and queues nothing for an anonymous persistent session that is offline; Mosquitto
with persistence does both, which is why the tests use it.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from iot.errors import IotError


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Return once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise IotError(f"broker did not open {host}:{port} within {timeout:.0f} s") from None
            time.sleep(0.05)


class EmbeddedBroker:
    """amqtt in a background thread with its own event loop; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        self._ready.wait(15)
        if self._error is not None:
            raise IotError(f"embedded broker could not start on {self.host}:{self.port}: {self._error}")
        if not self._ready.is_set():
            raise IotError(f"embedded broker did not start on {self.host}:{self.port} within 15 s")
        return self  # listening once broker.start() returned (no probe: amqtt logs probes as errors)

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def main() -> None:
            self._stopped = asyncio.Event()
            broker = Broker(
                {
                    "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                    "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
                }
            )
            try:
                await broker.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stopped.wait()
            await broker.shutdown()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mosquitto:
    """A real Mosquitto on a loopback port, with persistence in `workdir` so QoS 1 sessions and
    their queued messages survive `restart()`. `tls` = (CA, certificate, key) makes it TLS-only."""

    def __init__(
        self,
        port: int,
        workdir: Path | None = None,
        binary: str | None = None,
        host: str = "127.0.0.1",
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls is not None
        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            raise IotError("mosquitto is not installed (apt-get install mosquitto)")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="yinqi-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text(
            f"user {getpass.getuser()}\n"  # as root, do not drop to 'mosquitto' (it could not write here)
            f"listener {port} {host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 100\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
        )
        if tls is not None:  # (CA, server certificate, server key): the listener speaks TLS only
            cafile, certfile, keyfile = tls
            with self.conf.open("a") as conf:
                conf.write(f"cafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(self.host, self.port)
        except IotError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Mosquitto writes its persistence file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
