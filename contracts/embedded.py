"""The embedded chain: py-evm in process (eth-tester), persisted across CLI invocations.

Every `yinqi chain ...` call is a new process, so the chain is kept as a journal: the genesis
timestamp, then every raw signed transaction with the timestamp of the block that mined it, and
every time jump. Opening replays the journal with the same block timestamps, which rebuilds the
same state, the same transaction hashes and the same block numbers. Writers hold an exclusive
file lock and first replay what other processes appended, so concurrent CLI calls never fork
the chain. With `path=None` the chain lives in memory only (tests, benchmarks).
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_tester import EthereumTester, PyEVMBackend

JOURNAL_VERSION = 1


class JournaledTester(EthereumTester):  # type: ignore[misc]  # eth-tester ships no type hints
    """An EthereumTester whose block-producing calls are appended to a journal file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._offset = 0  # bytes of the journal already applied
        self._replaying = False
        self._inner = False  # inside one of our journaled calls: its auto-mine is not a new entry
        header: dict[str, Any] | None = None
        if path is not None and path.exists() and path.stat().st_size > 0:
            with path.open() as fh:
                header = json.loads(fh.readline())
        if header is None:
            header = {"version": JOURNAL_VERSION, "genesis_timestamp": int(time.time()) - 1}
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with self._locked():
                    if not path.exists() or path.stat().st_size == 0:
                        path.write_text(json.dumps(header) + "\n")
                with path.open() as fh:
                    header = json.loads(fh.readline())
        params = PyEVMBackend.generate_genesis_params(overrides={"timestamp": header["genesis_timestamp"]})
        super().__init__(backend=PyEVMBackend(genesis_parameters=params))
        if path is not None:
            with path.open("rb") as fh:
                self._offset = len(fh.readline())
            self.sync()

    # -- journal ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        with open(str(self.path) + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def sync(self) -> int:
        """Apply entries other processes appended since we last looked; returns how many."""
        if self.path is None:
            return 0
        applied = 0
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a writer is mid-line; it holds the lock, we will see it next time
                self._apply(json.loads(line))
                self._offset += len(line)
                applied += 1
        return applied

    def _apply(self, entry: dict[str, Any]) -> None:
        self._replaying = True
        try:
            chain = self.backend.chain
            if "tx" in entry:
                chain.header = chain.header.copy(timestamp=entry["ts"])
                super().send_raw_transaction(entry["tx"])
            elif "travel" in entry:
                super().time_travel(entry["travel"])
            elif "mine" in entry:
                chain.header = chain.header.copy(timestamp=entry["ts"])
                super().mine_blocks(entry["mine"])
        finally:
            self._replaying = False

    def _append(self, entry: dict[str, Any]) -> None:
        assert self.path is not None
        line = (json.dumps(entry) + "\n").encode()
        with self.path.open("ab") as fh:
            fh.write(line)
            fh.flush()
        self._offset += len(line)

    def _freshen_timestamp(self) -> None:
        """Stamp the pending block with the wall clock (py-evm fixes it when the last block was mined)."""
        chain = self.backend.chain
        now = int(time.time())
        if now > chain.header.timestamp:
            chain.header = chain.header.copy(timestamp=now)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self._replaying:
            yield
            return
        if self.path is None:
            self._freshen_timestamp()
            self._inner = True
            try:
                yield
            finally:
                self._inner = False
            return
        with self._locked():
            self.sync()
            self._freshen_timestamp()
            self._inner = True
            try:
                yield
            finally:
                self._inner = False

    # -- block-producing calls -------------------------------------------------------------

    def send_raw_transaction(self, raw_transaction_hex):  # type: ignore[no-untyped-def]
        with self._writing():
            ts = self.backend.chain.header.timestamp
            tx_hash = super().send_raw_transaction(raw_transaction_hex)
            if self.path is not None and not self._replaying:
                self._append({"tx": raw_transaction_hex, "ts": ts})
            return tx_hash

    def time_travel(self, to_timestamp):  # type: ignore[no-untyped-def]
        with self._writing():
            result = super().time_travel(to_timestamp)
            if self.path is not None and not self._replaying:
                self._append({"travel": to_timestamp})
            return result

    def mine_blocks(self, num_blocks=1, coinbase="0x0000000000000000000000000000000000000000"):  # type: ignore[no-untyped-def]
        if self._replaying or self._inner:
            return super().mine_blocks(num_blocks, coinbase)
        hashes = []
        for _ in range(num_blocks):  # one entry per block: each block's timestamp is recorded
            with self._writing():
                ts = self.backend.chain.header.timestamp
                hashes.extend(super().mine_blocks(1, coinbase))
                if self.path is not None:
                    self._append({"mine": 1, "ts": ts})
        return hashes

    def send_transaction(self, transaction):  # type: ignore[no-untyped-def]
        raise NotImplementedError("the embedded chain takes signed raw transactions only (journaled)")
