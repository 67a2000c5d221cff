"""Live progress of a federated run: each round as it finishes, from the run's `report.json`.

The ServerApp's recorder rewrites `report.json` whole (atomically) after every round, wherever
it runs: in this process (the Simulation Engine), in a loopback deployment, or on the bank's
SuperLink host for `bank train`. `RoundFollower` polls that file from a thread and calls
`on_round` once per finished round (its evaluation recorded), in order, so the CLI can print a
line per round while the run goes on; `stop()` reads the file a last time so no round is lost.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

RoundCallback = Callable[[Mapping[str, Any], Mapping[str, Any]], None]  # (round, whole report)


def finished(round_: Mapping[str, Any]) -> bool:
    """A round is finished once its evaluation was recorded (its duration is set then)."""
    seconds = round_.get("seconds")
    return isinstance(seconds, (int, float)) and seconds > 0


class RoundFollower:
    """Calls `on_round(round, report)` for each newly finished round in `path` until stopped."""

    def __init__(self, path: Path, on_round: RoundCallback, interval: float = 0.25, since: float | None = None) -> None:
        """`since` (a time.time()): ignore a report file older than that (the previous run's)."""
        self.path = Path(path)
        self.since = time.time() - 1.0 if since is None else since
        self.on_round = on_round
        self.interval = interval
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="round-follower", daemon=True)

    def poll(self) -> int:
        """Read the report once; returns how many new finished rounds were passed on."""
        try:
            if self.path.stat().st_mtime < self.since:
                return 0  # the last run's report, not yet replaced
            report = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return 0  # not written yet (or removed by a new run): nothing new
        if not isinstance(report, dict):
            return 0
        new = 0
        for r in report.get("rounds") or []:
            if isinstance(r, dict) and isinstance(r.get("round"), int) and r["round"] not in self.seen and finished(r):
                self.seen.add(r["round"])
                self.on_round(r, report)
                new += 1
        return new

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def start(self) -> RoundFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.poll()

    def __enter__(self) -> RoundFollower:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def round_line(r: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """One round as one line: metrics, who took part or was refused, ε spent, time."""

    def value(key: str) -> str:
        v = r.get(key)
        return "-" if v is None else f"{float(v):.4f}"

    total = (report.get("settings") or {}).get("rounds") if isinstance(report.get("settings"), Mapping) else None
    parts = [
        f"round {r['round']}{f'/{total}' if total else ''}: AUC {value('federated_auc')}, KS {value('federated_ks')}"
    ]
    if r.get("test_auc") is not None:
        parts.append(f"test AUC {value('test_auc')}, KS {value('test_ks')}")
    parts.append(f"{len(r.get('participants') or [])} took part")
    refused = r.get("refused") or {}
    if refused:
        parts.append("refused " + ", ".join(sorted(refused)))
    if r.get("dropped"):
        parts.append("dropped " + ", ".join(r["dropped"]))
    eps = [
        f"{c.get('platform')} {float(c['epsilon']):.2f}"
        for c in r.get("clients") or []
        if isinstance(c, Mapping) and c.get("epsilon") is not None
    ]
    if eps:
        parts.append("ε " + ", ".join(eps))
    parts.append(f"{float(r.get('seconds') or 0):.1f} s")
    return " · ".join(parts)
