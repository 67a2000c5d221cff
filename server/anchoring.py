"""The bank's periodic anchoring: `yinqi bank serve --anchor-every S` drains the anchoring store.

Everything the bank's services queue for anchoring (alerts, models) lands in the bank's own
database. The loop that drains it is the store's own flusher,
`contracts.outbox.AnchorOutbox.start_flusher`: every S seconds it anchors what is pending, one
transaction per batch, and writes the proofs, exactly as `yinqi anchor flush` does; it takes the
store's lease first, so it and any `anchor flush` (another process, another host) take turns; a
failure (chain unreachable) is logged and retried at the next tick while the leaves stay queued.
`PeriodicFlusher` is only the handle `bank serve` starts, stops and reports from.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from contracts.errors import ChainError
from contracts.outbox import AnchorOutbox

log = logging.getLogger(__name__)


class PeriodicFlusher:
    """The anchoring store's flusher on a daemon thread, with what it did so far.

    Parameters
    ----------
    db_url : the bank's database (where the anchoring store lives).
    interval : seconds between flushes (> 0).
    rpc : the chain's JSON-RPC URL (None: the configured chain, embedded by default).
    proof_dir : where proof files go (None: `<data dir>/proofs`).
    chain : an open chain client to use instead of `rpc` (one process holding the chain).
    """

    def __init__(
        self,
        db_url: str,
        interval: float,
        rpc: str | None = None,
        proof_dir: Path | None = None,
        *,
        chain: Any = None,
    ) -> None:
        if not interval > 0:
            raise ChainError(f"--anchor-every {interval!r}: expected a positive number of seconds (0 turns it off)")
        self.outbox = AnchorOutbox(db_url)
        self.interval = float(interval)
        self.options: dict[str, Any] = {"rpc": rpc, "proof_dir": proof_dir, "chain": chain}
        self.anchored = 0  # proofs written by this flusher
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None

    def _flushed(self, proofs: list[Path]) -> None:
        self.anchored += len(proofs)
        self.last_error = None
        if proofs:
            log.info("anchored %d record(s)", len(proofs))

    def _failed(self, error: str) -> None:
        self.last_error = error

    def start(self) -> PeriodicFlusher:
        self._thread, self._stop = self.outbox.start_flusher(
            self.interval, on_flush=self._flushed, on_error=self._failed, **self.options
        )
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the flush under way (if any) has finished; leaves pending stay queued."""
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
