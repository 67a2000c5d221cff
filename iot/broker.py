"""A Mosquitto process beside the monitor (tests, benchmarks, `yinqi iot broker --mosquitto`).

Mosquitto with persistence keeps QoS 1 sessions and their queued messages across its own
restarts, which the embedded broker (`iot.mqtt_broker`, for the demo) does not.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import tempfile
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
        self.proc: subprocess.Popen[bytes] | None = None

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
