"""Consent as a platform reports it to the bank, for tests that need consented merchants."""

from __future__ import annotations

import itertools
import time

from federation.clock import utcnow
from server.consent import ConsentEventIn, ConsentRegistry

_event_ids = itertools.count(time.time_ns() // 1000)


def report_consent(db_url: str, merchants: list[str], *, granted: bool = True, platform: str = "platform-1") -> int:
    """Store, in the bank's database, consent events as `platform` would report them."""
    now = utcnow()
    events = [ConsentEventIn(next(_event_ids), m, granted, now) for m in merchants]
    return ConsentRegistry(db_url).record(platform, events)
