"""ECDH-PSI (Meadows 1986; Huberman, Franklin & Hogg 1999) over Ristretto255, one side learning.

The **receiver** (the bank) learns which of its ids the **sender** (a platform) also holds;
the sender learns only the size of the receiver's set and, when told, the cardinality.

    receiver: A = [a·H(x) for x in X]                 (its order)         -> sender
    sender:   D = [b·P for P in A]                    (same order)        -> receiver
              S = [b·H(y) for y in π(Y)]              (a random order π)  -> receiver
    receiver: x ∈ X∩Y  ⇔  a·S[j] == D[i] for some j   (x = X[i]; j is y's *handle*)

`a`, `b` are fresh random scalars per session; H is hash-to-group of the session and the id
(`group.hash_to_group`). Under the (one-more) decisional Diffie-Hellman assumption in the
random-oracle model, neither side can tell anything about the other's ids outside the
intersection from what it received: every value it sees is a random-looking group element.
With `cardinality_only`, the sender shuffles D before returning it, so the receiver can count
matches but not say which of its ids matched. A *handle* is a position in the sender's
shuffled order: the receiver can name a matched platform row by it without the platform
learning which of its rows matched (vertical training uses this; see docs/vertical.md).

This module is pure computation on byte strings: no network, no storage.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from federation.errors import YinqiError
from federation.psi import group

POINT = group.POINT_BYTES
MAX_IDS = 20_000_000  # a sanity bound on any set a party announces (1M is the documented scale)


class PsiError(YinqiError):
    """A PSI input or a peer's message that breaks the protocol; nothing is stored."""


_POINTS = np.dtype((np.void, POINT))


def clean_ids(ids: Sequence[object], source: str = "ids") -> list[str]:
    """Ids as stripped text; refuses an empty id or a duplicate, naming its 1-based row."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for row, value in enumerate(ids, start=1):
        text = "" if value is None else str(value).strip()
        if not text or text.lower() == "nan":
            raise PsiError(f"{source}: row {row}: empty merchant id")
        if text in seen:
            raise PsiError(f"{source}: row {row}: merchant id '{text}' repeats row {seen[text]}; ids must be unique")
        seen[text] = row
        out.append(text)
    if len(out) > MAX_IDS:
        raise PsiError(f"{source}: {len(out):,} ids; at most {MAX_IDS:,} per PSI run")
    return out


def new_session() -> str:
    """A fresh session id (hex): it salts the hash, so values from two runs never compare."""
    return secrets.token_hex(16)


def blind(ids: Sequence[str], session: str, key: bytes, workers: int = 1) -> bytes:
    """key·H(id) for each id, concatenated: the values one party sends the other."""
    return group.multiply(group.hash_to_group(ids, session.encode(), workers), key, workers)


def chunks(data: bytes, per_chunk: int) -> Iterator[tuple[int, bytes]]:
    """(first index, bytes) slices of `per_chunk` points each."""
    step = per_chunk * POINT
    for start in range(0, len(data), step):
        yield start // POINT, data[start : start + step]


@dataclass
class Sender:
    """The platform's side: blinds its own ids in a random order and re-blinds the receiver's."""

    ids: list[str]
    session: str
    workers: int = 1
    key: bytes = field(default_factory=group.random_scalar, repr=False)
    order: list[str] = field(init=False)

    def __post_init__(self) -> None:
        permutation = np.random.default_rng(secrets.randbits(128)).permutation(len(self.ids))
        self.order = [self.ids[i] for i in permutation]

    def blinded(self) -> bytes:
        """b·H(y) for y in the shuffled order (position = the row's handle)."""
        return blind(self.order, self.session, self.key, self.workers)

    def reblind(self, points: bytes) -> bytes:
        """b·P for the receiver's points, in their order (GroupError names a bad point)."""
        return group.multiply(points, self.key, self.workers, what="receiver point")

    @staticmethod
    def shuffle(points: bytes) -> bytes:
        """The re-blinded points in a random order (cardinality-only runs)."""
        array = np.frombuffer(points, dtype=_POINTS)
        return np.random.default_rng(secrets.randbits(128)).permutation(array).tobytes()


@dataclass(frozen=True)
class PsiResult:
    """What the receiver learned: the cardinality, and (unless cardinality-only) the matches."""

    cardinality: int
    receiver_count: int
    sender_count: int
    matches: tuple[tuple[str, int], ...] | None  # (receiver id, sender handle), receiver order

    @property
    def ids(self) -> list[str]:
        return [m for m, _ in self.matches or ()]


@dataclass
class Receiver:
    """The bank's side: blinds its ids, collects the sender's values, finds the matches."""

    ids: list[str]
    session: str
    workers: int = 1
    key: bytes = field(default_factory=group.random_scalar, repr=False)

    def blinded(self) -> bytes:
        """a·H(x) for x in the receiver's order."""
        return blind(self.ids, self.session, self.key, self.workers)

    def unblind_sender(self, points: bytes) -> bytes:
        """a·S for the sender's blinded points (GroupError names a bad point)."""
        return group.multiply(points, self.key, self.workers, what="sender point")

    def result(self, doubled: bytes, sender_final: bytes, *, cardinality_only: bool) -> PsiResult:
        """Match `doubled` (b·a·H(x), receiver order unless shuffled) against a·b·H(y)."""
        if len(doubled) != POINT * len(self.ids):
            raise PsiError(f"the sender returned {len(doubled) // POINT} re-blinded values for {len(self.ids)} sent")
        mine = np.frombuffer(doubled, dtype=_POINTS)
        theirs = np.frombuffer(sender_final, dtype=_POINTS)
        if len(np.unique(mine)) != len(mine) or len(np.unique(theirs)) != len(theirs):
            raise PsiError("the sender's values repeat: its set or its re-blinding is not a set of distinct ids")
        _common, in_mine, in_theirs = np.intersect1d(mine, theirs, assume_unique=True, return_indices=True)
        if cardinality_only:
            return PsiResult(len(in_mine), len(self.ids), len(theirs), None)
        order = np.argsort(in_mine, kind="stable")
        matches = tuple((self.ids[int(in_mine[k])], int(in_theirs[k])) for k in order)
        return PsiResult(len(matches), len(self.ids), len(theirs), matches)


def naive_hashes(ids: Sequence[str]) -> bytes:
    """SHA-256 of each id: the naive exchange PSI replaces (a dictionary attack inverts it)."""
    import hashlib

    return b"".join(hashlib.sha256(i.encode()).digest() for i in ids)
