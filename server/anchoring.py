"""The bank's periodic anchoring: a timer thread in the services process drains the outbox.

Everything the bank's services queue for anchoring (alerts, models) lands in the bank's own
database (`contracts.outbox.AnchorOutbox` on the same engine). `yinqi bank serve --anchor-every
S` (and `yinqi bank up`, which passes it) starts a `PeriodicFlusher` that, every S seconds,
anchors whatever is pending in one transaction per batch and writes the proofs, exactly as
`yinqi anchor flush` does. A failure (chain unreachable) is logged and retried at the next tick;
the leaves stay queued.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from contracts.outbox import AnchorOutbox

log = logging.getLogger(__name__)


class PeriodicFlusher:
    """Flush `db_url`'s anchoring outbox every `interval` seconds on a daemon thread.

    Parameters
    ----------
    db_url : the bank's database (where the outbox lives).
    interval : seconds between flushes (> 0).
    rpc : the chain's JSON-RPC URL (None: the configured chain, embedded by default).
    proof_dir : where proof files go (None: `<data dir>/proofs`).
    """

    def __init__(self, db_url: str, interval: float, rpc: str | None = None, proof_dir: Path | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"flush interval must be positive, got {interval!r}")
        self.outbox = AnchorOutbox(db_url)
        self.interval = float(interval)
        self.rpc = rpc
        self.proof_dir = proof_dir
        self.anchored = 0  # proofs written by this flusher
        self.last_error: str | None = None
        self.chain: Any = None  # the chain client, opened on the first flush with work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchor-flusher", daemon=True)

    def flush_once(self) -> int:
        """Anchor what is pending now; returns the number of proofs written."""
        if self.outbox.pending() == 0:
            return 0
        if self.chain is None:
            from contracts.client import open_chain

            self.chain = open_chain(self.rpc)
        written = len(self.outbox.flush(chain=self.chain, proof_dir=self.proof_dir))
        self.anchored += written
        return written

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                written = self.flush_once()
                self.last_error = None
                if written:
                    log.info("anchored %d record(s)", written)
            except Exception as exc:  # the leaves stay queued; next tick retries
                self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("anchor flush failed, will retry in %.0f s: %s", self.interval, self.last_error)
                self.chain = None

    def start(self) -> PeriodicFlusher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
