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
from dataclasses import dataclass

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
    state = {"sent_own": False, "closed": False, "doubled": 0, "sent_doubles": 0, "bank_count": -1}
    lock = threading.Lock()
    held: list[bytes] = []

    def finish_if_done() -> None:
        with lock:
            if state["sent_own"] and state["sent_doubles"] == state["bank_count"] and not state["closed"]:
                state["closed"] = True
                out.queue.put(_END)

    def send_own() -> None:
        try:
            for offset in range(0, len(sender.order), CHUNK):
                part = blind(sender.order[offset : offset + CHUNK], session, sender.key, workers)
                out.put(
                    vertical_pb2.PsiFrame(
                        points=vertical_pb2.PsiPoints(kind=Kind.PLATFORM_BLINDED, offset=offset, points=part)
                    )
                )
                if progress:
                    progress("own", min(offset + CHUNK, len(ids)), len(ids))
            with lock:
                state["sent_own"] = True
            finish_if_done()
        except BaseException as exc:
            failure.append(exc)
            out.queue.put(_END)

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
    stub = vertical_pb2_grpc.PsiServiceStub(channel)
    received = 0
    done: vertical_pb2.PsiDone | None = None
    own = threading.Thread(target=send_own, name="yinqi-psi-own", daemon=True)
    try:
        replies = stub.Intersect(out.frames(), timeout=timeout)
        for reply in replies:
            data = reply.SerializeToString()
            received += len(data)
            if tap is not None:
                tap("received", data)
            body = reply.WhichOneof("body")
            if body == "accept":
                bank_count = int(reply.accept.count)
                if not 0 < bank_count <= max_bank_ids:
                    raise PsiError(f"the bank announces {bank_count} ids; this platform allows 1..{max_bank_ids}")
                state["bank_count"] = bank_count
                own.start()
            elif body == "points":
                points = reply.points
                count = len(points.points) // POINT
                if (
                    points.kind != Kind.BANK_BLINDED
                    or points.offset != state["doubled"]
                    or state["doubled"] + count > state["bank_count"]
                ):
                    raise PsiError(f"the bank's chunk at offset {points.offset} is out of order or over its count")
                doubled = sender.reblind(points.points)
                state["doubled"] += count
                if not cardinality_only:
                    out.put(_reblinded(int(points.offset), doubled))
                else:
                    held.append(doubled)
                    if state["doubled"] == state["bank_count"]:  # all in: shuffle, then send
                        for first, part in chunks(Sender.shuffle(b"".join(held)), CHUNK):
                            out.put(_reblinded(first, part))
                with lock:
                    state["sent_doubles"] = (
                        state["doubled"] if not cardinality_only or state["doubled"] == state["bank_count"] else 0
                    )
                if progress:
                    progress("bank", int(state["doubled"]), int(state["bank_count"]))
                finish_if_done()
            elif body == "done":
                done = reply.done
        if failure:
            raise failure[0]
    except grpc.RpcError as exc:
        raise remote_error(exc) from None
    except BaseException:
        out.queue.put(_END)
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


def _reblinded(offset: int, points: bytes) -> vertical_pb2.PsiFrame:
    return vertical_pb2.PsiFrame(points=vertical_pb2.PsiPoints(kind=Kind.BANK_REBLINDED, offset=offset, points=points))
