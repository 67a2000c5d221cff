"""Ristretto255, the prime-order group over Curve25519, from libsodium (as bundled by `rbcl`).

PyNaCl 1.6 binds libsodium's Ed25519 point functions but not its Ristretto255 ones
(`crypto_core_ristretto255_*`, `crypto_scalarmult_ristretto255`); `rbcl` ships a libsodium
build with them and loads it with ctypes. We call the three functions PSI needs straight on
that library with one output buffer per batch: ctypes releases the GIL during each call, so
batches run in parallel threads (`workers`).

Every point that arrives from another party goes through `crypto_scalarmult_ristretto255`,
which refuses a non-canonical encoding, a point outside the group and the identity (it
returns -1): a hostile peer cannot slip in a low-order or malformed point.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from federation.errors import YinqiError

POINT_BYTES = 32
SCALAR_BYTES = 32
HASH_BYTES = 64
DOMAIN = b"yinqi/psi/ristretto255-sha512/v1"


class GroupError(YinqiError):
    """A group element or scalar that libsodium refuses (malformed, off the group, identity)."""


def _load() -> Any:
    """libsodium with Ristretto255, once per process; rbcl's temporary copy is unlinked after
    loading (the mapping stays valid), so no file is left behind in /tmp."""
    import rbcl

    module = sys.modules.get("rbcl._sodium")
    path = getattr(module, "lib_path", None)
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass
    lib = rbcl._sodium  # the ctypes CDLL rbcl loaded (its public wrappers re-check per call)
    for name in ("crypto_scalarmult_ristretto255", "crypto_core_ristretto255_from_hash"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


_LIB: Any = None


def lib() -> Any:
    global _LIB
    if _LIB is None:
        _LIB = _load()
    return _LIB


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar mod the group order (libsodium's CSPRNG)."""
    lib()  # loads rbcl the one way that removes its temporary copy
    import rbcl

    return bytes(rbcl.crypto_core_ristretto255_scalar_random())


def id_digest(merchant_id: str, session: bytes) -> bytes:
    """SHA-512 of the domain, the session and the id (length-prefixed): the input of hash-to-group."""
    raw = merchant_id.encode("utf-8")
    return hashlib.sha512(
        DOMAIN + len(session).to_bytes(2, "big") + session + len(raw).to_bytes(4, "big") + raw
    ).digest()


def _split(count: int, workers: int, minimum: int = 256) -> list[tuple[int, int]]:
    parts = max(1, min(workers, count // minimum or 1))
    step = -(-count // parts)
    return [(start, min(count, start + step)) for start in range(0, count, step)]


def hash_to_group(ids: Sequence[str], session: bytes, workers: int = 1) -> bytes:
    """H(id) for every id, concatenated (32 bytes each): Ristretto255 from_hash of `id_digest`.

    `from_hash` maps 64 uniform bytes with two Elligator maps and an addition, so the result is
    uniform in the group (a random oracle into it, as ECDH-PSI's proof assumes).
    """
    out = ctypes.create_string_buffer(POINT_BYTES * len(ids))
    fn = lib().crypto_core_ristretto255_from_hash

    def work(span: tuple[int, int]) -> None:
        for i in range(span[0], span[1]):
            fn(ctypes.byref(out, POINT_BYTES * i), id_digest(ids[i], session))

    _run(work, _split(len(ids), workers), workers)
    return out.raw


def multiply(points: bytes, scalar: bytes, workers: int = 1, what: str = "point") -> bytes:
    """scalar·P for every 32-byte point P in `points`; GroupError naming the first bad one."""
    if len(points) % POINT_BYTES:
        raise GroupError(f"{what}s: {len(points)} bytes is not a whole number of {POINT_BYTES}-byte points")
    if len(scalar) != SCALAR_BYTES:
        raise GroupError(f"scalar: {len(scalar)} bytes, expected {SCALAR_BYTES}")
    count = len(points) // POINT_BYTES
    if not points:
        return b""
    source = (ctypes.c_char * len(points)).from_buffer_copy(points)
    out = ctypes.create_string_buffer(len(points))
    fn = lib().crypto_scalarmult_ristretto255
    bad: list[int] = []

    def work(span: tuple[int, int]) -> None:
        for i in range(span[0], span[1]):
            if fn(ctypes.byref(out, POINT_BYTES * i), scalar, ctypes.byref(source, POINT_BYTES * i)) != 0:
                bad.append(i)
                return

    _run(work, _split(count, workers), workers)
    if bad:
        raise GroupError(
            f"{what} {min(bad)} is not a valid Ristretto255 element (malformed, off the group or identity)"
        )
    return out.raw


def _run(work: Any, spans: list[tuple[int, int]], workers: int) -> None:
    if len(spans) <= 1 or workers <= 1:
        for span in spans:
            work(span)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yinqi-psi") as pool:
        list(pool.map(work, spans))


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
