"""Canonical JSON: the one byte form that yinqi hashes, anchors and compares.

Sorted keys, no spaces, UTF-8 kept as is: the same record always gives the same bytes, in
every process and on every side, so a hash computed by the bank matches an auditor's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(data: Any) -> str:
    """`data` as canonical JSON text (sorted keys, no whitespace, non-ASCII kept)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_bytes(data: Any) -> bytes:
    """`canonical_json(data)` encoded as UTF-8: what gets hashed."""
    return canonical_json(data).encode()


def sha256_hex(data: Any) -> str:
    """sha256 of the canonical bytes of `data`, as hex."""
    return hashlib.sha256(canonical_bytes(data)).hexdigest()
