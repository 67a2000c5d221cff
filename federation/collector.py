"""Pausing Python's cyclic garbage collector around bulk work, and keeping a server's start-up
heap out of its full passes.

A monthly review holds every line's reported rows, previous limit record and outcome (millions
of small objects) while it allocates more: each of the collector's full passes walks all of
them, which was 30 % of a 100,000-line review. Reference counting still frees what the work
drops; only reference cycles made meanwhile wait until the last pause ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # pauses in force, across threads
_enabled_before = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while the block runs. Pauses nest and overlap across threads: the
    collector comes back when the last one ends, and only if it was on before the first."""
    global _depth, _enabled_before
    with _lock:
        if _depth == 0:
            _enabled_before = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _enabled_before:
                gc.enable()


def freeze_start_up_heap() -> int:
    """Leave every object alive now out of the collector's passes (`gc.freeze`), once a server
    has started: its modules, torch and the promoted model. A full pass walks every tracked
    object, and a server's next one would stall whichever request set it off, for as long as
    that walk takes (171-188 ms in a bank server on a 100,000-line book, docs/bank.md). Garbage
    is collected first, so none is kept. Returns the objects frozen so far."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
