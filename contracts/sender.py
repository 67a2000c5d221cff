"""One transaction sender per chain account: a lock owning the account's nonce.

Several processes (CLI commands, the bank's flusher) may sign for the same account. Each send
holds the account's lock from reading the nonce to the mined receipt, so two senders never
pick the same nonce: a file lock in `<data dir>/chain/locks/` for everyone on this machine (the
embedded chain's processes, or a node's clients here), a thread lock for an in-memory chain.
Senders on other machines are tolerated: a nonce a node refuses as used is re-read and the
transaction re-signed, but only for refusals that prove nothing was accepted, so a retry can
never send a record twice.
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts.errors import ChainError

NONCE_RETRIES = 5
# Refusals meaning "this nonce is taken, the transaction was not accepted".
_NONCE_TAKEN = re.compile(r"invalid transaction nonce|nonce too low|nonce has already been used|replacement", re.I)
# The very same signed transaction is already in the node's pool: it was accepted.
_ALREADY_KNOWN = re.compile(r"already known|known transaction|already imported", re.I)

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


@contextmanager
def account_lock(lock_dir: Path | None, chain_key: str, address: str) -> Iterator[None]:
    """Hold the lock of `address` on the chain `chain_key` (threads and, with a directory, processes)."""
    key = f"{chain_key}:{address.lower()}"
    with _thread_lock(key):
        if lock_dir is None:
            yield
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9]+", "-", chain_key)[:40]
        with open(lock_dir / f"{safe}-{address.lower()}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def send_with_nonce(
    w3: Any, acct: Any, build: Callable[[int], dict[str, Any]], action: str, *, on_retry: Callable[[], None]
) -> Any:
    """Sign `build(nonce)` as `acct`, send it, wait for the receipt; call under `account_lock`.

    A nonce the node says is taken (another machine sent from this account) is re-read and the
    transaction re-signed, up to NONCE_RETRIES times; `on_retry` refreshes the caller's view first.
    """
    for attempt in range(1, NONCE_RETRIES + 1):
        nonce = int(w3.eth.get_transaction_count(acct.address, "pending"))
        signed = acct.sign_transaction(build(nonce))
        try:
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception as exc:
            text = str(exc)
            if _ALREADY_KNOWN.search(text):
                tx_hash = signed.hash
            elif _NONCE_TAKEN.search(text) and attempt < NONCE_RETRIES:
                on_retry()
                continue
            else:
                raise
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.05)
        if receipt["status"] != 1:
            raise ChainError(f"{action}: transaction 0x{bytes(tx_hash).hex()} reverted (gas used {receipt['gasUsed']})")
        return receipt
    raise ChainError(f"{action}: the nonce of {acct.address} was taken {NONCE_RETRIES} times by other senders")
