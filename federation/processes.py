"""Supervision of the deployment's processes: start with logs, notice deaths, stop them all.

Every process starts in its own session, so stopping its process group also stops what it
started (Flower's superexec children, forked ClientApp tasks). `stop_all` runs on normal exit,
on error and on Ctrl-C (the context manager), so nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from federation.errors import ProcessError


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    expect_exit: bool = False  # a process allowed to end on its own

    @property
    def pid(self) -> int:
        return self.popen.pid


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (from /proc; Flower detaches some into new sessions)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def pid_alive(pid: int | None) -> bool:
    """True for a running process (a zombie awaiting its parent counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False  # it ended between the two checks


def stop_tree(pid: int, timeout: float = 8.0) -> None:
    """Stop a process, its group and every descendant (even those in other sessions)."""
    extra = descendants(pid) if os.path.isdir("/proc") else []
    stop_group(pid, timeout)
    for child in extra:
        if pid_alive(child):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while any(pid_alive(c) for c in extra) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in extra:
        if pid_alive(child):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_group(pid: int, timeout: float = 8.0) -> None:
    """SIGTERM a process group, wait for it, SIGKILL what is left."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        try:  # reap our own child so the group can disappear
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Supervisor:
    """Starts named processes with their output in `log_dir/<name>.log`."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None, expect_exit: bool = False
    ) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        full_env = {**os.environ, **self.env, **(env or {})}
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                start_new_session=True,
            )
        proc = Proc(name, popen, log, expect_exit)
        self.procs.append(proc)
        return proc

    def check(self) -> None:
        """Raise when a supervised process died unexpectedly, quoting its log."""
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None and not proc.expect_exit:
                raise ProcessError(f"{proc.name} exited with code {code} (log {proc.log}):\n{log_tail(proc.log)}")

    def stop(self, proc: Proc, sig: int | None = None) -> None:
        # Mark first: `check()` may run in another thread and must not take this exit for a crash.
        proc.expect_exit = True
        if sig is not None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            proc.popen.wait(timeout=10)
        else:
            stop_tree(proc.pid)
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop_tree(proc.pid)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()

    def __enter__(self) -> Supervisor:
        self._old_sigterm = _sigterm_as_interrupt()
        return self

    def __exit__(self, *exc: object) -> None:
        # A second Ctrl-C / SIGTERM while stopping must not abort `stop_all` half-way: that
        # orphaned the SuperNode (stopped after the worker), which then retried forever.
        shielded = _ignore_stop_signals()
        try:
            self.stop_all()
        finally:
            for sig, handler in shielded.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            if getattr(self, "_old_sigterm", None) is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)


def _ignore_stop_signals() -> dict[int, signal._HANDLER]:
    """Ignore SIGINT and SIGTERM (main thread only); returns the handlers to put back."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> signal._HANDLER:
    """Make SIGTERM unwind like Ctrl-C (so `with` blocks stop the children); returns the old
    handler, or None when not possible (not the main thread, or someone else handles it)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment has `name=value` (how tests find leftovers: every
    process of one deployment, down to Flower's own helpers, inherits its private FLWR_HOME)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in env and pid_alive(int(entry)):
            found.append(int(entry))
    return found
