"""The platform's side of a PSI run against the bank's `PsiService`.

The platform blinds its ids in a random order and streams them while it re-blinds the bank's
chunks as they arrive (two threads, one queue of outgoing frames), so both computations
overlap. In a cardinality-only run it holds the re-blinded bank values until all have arrived
and shuffles them before sending. At the end it stores its order (`SessionBook`) so that
training can find a row by its handle.

Every frame is counted (bytes on the wire, protobuf payloads) and may be shown to `tap`
(tests inspect exactly what crossed).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from clients.vertical.store import SessionBook
from federation.psi.protocol import MAX_IDS, POINT, PsiError, Sender, blind, chunks, new_session
from proto import vertical_pb2, vertical_pb2_grpc
from proto.channel import remote_error

PROTOCOL = "ecdh-ristretto255-sha512/v1"
Kind = vertical_pb2.PsiPoints.Kind
Tap = Callable[[str, bytes], None]
_END = object()
CHUNK = 8192  # points per frame (256 KiB, well under gRPC's 4 MiB message limit)


@dataclass(frozen=True)
class PsiOutcome:
    """What the platform learned and what the run cost."""

    session_id: str
    platform_count: int
    bank_count: int
    cardinality: int
    cardinality_only: bool
    bytes_sent: int
    bytes_received: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class _Outgoing:
    """Frames to the bank, with byte counting; the gRPC sender thread drains it."""

    def __init__(self, tap: Tap | None) -> None:
        self.queue: queue.Queue[object] = queue.Queue(maxsize=16)
        self.bytes = 0
        self.tap = tap

    def put(self, frame: vertical_pb2.PsiFrame) -> None:
        self.queue.put(frame)

    def frames(self) -> Iterator[vertical_pb2.PsiFrame]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            assert isinstance(item, vertical_pb2.PsiFrame)
            data = item.SerializeToString()
            self.bytes += len(data)
            if self.tap is not None:
                self.tap("sent", data)
            yield item


@dataclass
class _Progress:
    """Where the run is; `lock` guards the decision to close the outgoing stream."""

    bank_count: int = -1
    reblinded: int = 0  # bank values re-blinded so far
    queued: int = 0  # re-blinded bank values queued for sending
    own_sent: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_psi(
    channel: grpc.Channel,
    ids: list[str],
    *,
    bank: str,
    cardinality_only: bool = False,
    book: SessionBook | None = None,
    platform_name: str = "",
    workers: int = 2,
    max_bank_ids: int = MAX_IDS,
    tap: Tap | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    timeout: float = 3600.0,
) -> PsiOutcome:
    """Run PSI with the bank behind `channel`; the platform's order is stored in `book`."""
    started = time.perf_counter()
    session = new_session()
    sender = Sender(ids, session, workers)
    out = _Outgoing(tap)
    failure: list[BaseException] = []
    state = _Progress()
    held: list[bytes] = []

    def close_when_done() -> None:
        with state.lock:
            if state.own_sent and state.queued == state.bank_count and not state.closed:
                state.closed = True
                out.queue.put(_END)

    def send_own() -> None:
        try:
            for offset in range(0, len(sender.order), CHUNK):
                part = blind(sender.order[offset : offset + CHUNK], session, sender.key, workers)
                out.put(_frame(Kind.PLATFORM_BLINDED, offset, part))
                if progress:
                    progress("own", min(offset + CHUNK, len(ids)), len(ids))
            state.own_sent = True
            close_when_done()
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)
            out.queue.put(_END)

    def take(points: vertical_pb2.PsiPoints) -> None:
        count = len(points.points) // POINT
        if (
            points.kind != Kind.BANK_BLINDED
            or points.offset != state.reblinded
            or state.reblinded + count > state.bank_count
        ):
            raise PsiError(f"the bank's chunk at offset {points.offset} is out of order or over its count")
        doubled = sender.reblind(points.points)
        state.reblinded += count
        if not cardinality_only:
            out.put(_frame(Kind.BANK_REBLINDED, int(points.offset), doubled))
            state.queued = state.reblinded
        else:
            held.append(doubled)
            if state.reblinded == state.bank_count:  # all in: shuffle, then send
                for first, part in chunks(Sender.shuffle(b"".join(held)), CHUNK):
                    out.put(_frame(Kind.BANK_REBLINDED, first, part))
                state.queued = state.reblinded
        if progress:
            progress("bank", state.reblinded, state.bank_count)
        close_when_done()

    out.put(
        vertical_pb2.PsiFrame(
            start=vertical_pb2.PsiStart(
                session_id=session,
                count=len(ids),
                cardinality_only=cardinality_only,
                protocol=PROTOCOL,
                platform=platform_name,
            )
        )
    )
    own = threading.Thread(target=send_own, name="yinqi-psi-own", daemon=True)
    replies = vertical_pb2_grpc.PsiServiceStub(channel).Intersect(out.frames(), timeout=timeout)
    received = 0
    done: vertical_pb2.PsiDone | None = None
    try:
        for reply in replies:
            data = reply.SerializeToString()
            received += len(data)
            if tap is not None:
                tap("received", data)
            body = reply.WhichOneof("body")
            if body == "accept":
                if state.bank_count >= 0 or not 0 < reply.accept.count <= max_bank_ids:
                    raise PsiError(
                        f"the bank announces {reply.accept.count} ids; this platform allows one announcement of 1..{max_bank_ids}"
                    )
                state.bank_count = int(reply.accept.count)
                own.start()
            elif body == "points":
                take(reply.points)
            elif body == "done":
                done = reply.done
        if failure:
            raise failure[0]
    except grpc.RpcError as exc:
        raise (failure[0] if failure else remote_error(exc)) from None
    except BaseException:
        out.queue.put(_END)
        replies.cancel()
        raise
    if done is None:
        raise PsiError("the bank closed the PSI stream without a result")
    (book or SessionBook()).save(session, bank, sender.order, int(done.bank_count), int(done.cardinality))
    return PsiOutcome(
        session_id=session,
        platform_count=len(ids),
        bank_count=int(done.bank_count),
        cardinality=int(done.cardinality),
        cardinality_only=cardinality_only,
        bytes_sent=out.bytes,
        bytes_received=received,
        seconds=time.perf_counter() - started,
    )


def _frame(kind: vertical_pb2.PsiPoints.Kind, offset: int, points: bytes) -> vertical_pb2.PsiFrame:
    return vertical_pb2.PsiFrame(points=vertical_pb2.PsiPoints(kind=kind, offset=offset, points=points))
