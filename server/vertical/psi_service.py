"""The bank's PSI service: a platform runs ECDH-PSI against the bank's merchant list.

One bidirectional stream per run (`proto/vertical.proto`). The bank blinds its ids chunk by
chunk while a reader thread takes in the platform's blinded ids and re-blinded bank values,
so both parties (and both cores) work at once. Every value from the platform is checked: in
order, within the announced count, a valid Ristretto255 element. Only after the whole run
checks out does the bank store the result (`PsiStore`); a refused run stores nothing.

Callers need mutual TLS with a client certificate from the bank's CA whose role is `platform`
(`federation.identity`); its common name is the platform's name. On a plaintext service (`insecure=True`, loopback only) the name in the
first frame is taken instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import grpc

from federation.errors import YinqiError
from federation.identity import PLATFORM, Identity, IdentityError, peer_identity
from federation.psi.protocol import MAX_IDS, POINT, PsiError, Receiver
from proto import vertical_pb2, vertical_pb2_grpc
from server.vertical.store import PsiStore, PsiStoreError

log = logging.getLogger(__name__)
PROTOCOL = "ecdh-ristretto255-sha512/v1"
Kind = vertical_pb2.PsiPoints.Kind


def caller_identity(context: grpc.ServicerContext, *, insecure: bool, claimed: str = "") -> Identity:
    """The caller from its verified client certificate (or the claimed name when plaintext)."""
    if insecure and not context.auth_context().get("x509_pem_cert"):
        return Identity(claimed.strip() or "platform", PLATFORM)
    return peer_identity(context.auth_context())


class _Inbox:
    """What the platform sends, checked as it arrives (runs in its own thread)."""

    def __init__(self, receiver: Receiver, bank_count: int, platform_count: int) -> None:
        self.receiver = receiver
        self.expected = {Kind.BANK_REBLINDED: bank_count, Kind.PLATFORM_BLINDED: platform_count}
        self.parts: dict[int, list[bytes]] = {Kind.BANK_REBLINDED: [], Kind.PLATFORM_BLINDED: []}
        self.received = {Kind.BANK_REBLINDED: 0, Kind.PLATFORM_BLINDED: 0}
        self.error: Exception | None = None
        self.done = threading.Event()

    def consume(self, frames: Iterator[vertical_pb2.PsiFrame]) -> None:
        try:
            for frame in frames:
                if frame.WhichOneof("body") != "points":
                    raise PsiError(f"unexpected '{frame.WhichOneof('body')}' frame after the start")
                self._take(frame.points)
            for kind, want in self.expected.items():
                if self.received[kind] != want:
                    raise PsiError(
                        f"{Kind.Name(kind)}: the platform sent {self.received[kind]} values, {want} were due"
                    )
        except Exception as exc:  # handed to the RPC thread, which aborts with it
            self.error = exc
        finally:
            self.done.set()

    def _take(self, points: vertical_pb2.PsiPoints) -> None:
        kind = points.kind
        if kind not in self.expected:
            raise PsiError(f"points of kind {points.kind} are not expected from a platform")
        if points.offset != self.received[kind]:
            raise PsiError(f"{Kind.Name(kind)}: chunk at offset {points.offset}, expected {self.received[kind]}")
        if not points.points or len(points.points) % POINT:
            raise PsiError(f"{Kind.Name(kind)}: a chunk of {len(points.points)} bytes is not whole 32-byte points")
        count = len(points.points) // POINT
        if self.received[kind] + count > self.expected[kind]:
            raise PsiError(f"{Kind.Name(kind)}: more values than the {self.expected[kind]} due")
        if kind == Kind.PLATFORM_BLINDED:
            self.parts[kind].append(self.receiver.unblind_sender(points.points))
        else:
            # Only ever compared byte for byte with the bank's own a·b·H(y): a malformed value
            # matches nothing, so it needs no group check (which would cost a multiplication).
            self.parts[kind].append(points.points)
        self.received[kind] += count

    def joined(self, kind: int) -> bytes:
        return b"".join(self.parts[kind])


class PsiService(vertical_pb2_grpc.PsiServiceServicer):
    """Parameters
    ----------
    store : where results go (the bank's database).
    bank_ids : returns the bank's merchant ids for a run (read when the run starts).
    insecure : the server is plaintext (loopback): accept the platform name the caller claims.
    chunk_size : points per chunk in each direction.
    workers : threads for the group operations (ctypes releases the GIL).
    max_platform_ids : refuse a platform announcing more ids than this.
    """

    def __init__(
        self,
        store: PsiStore,
        bank_ids: Callable[[], list[str]],
        *,
        insecure: bool = False,
        chunk_size: int = 8192,
        workers: int = 2,
        max_platform_ids: int = MAX_IDS,
    ) -> None:
        self.store = store
        self.bank_ids = bank_ids
        self.insecure = insecure
        self.chunk_size = chunk_size
        self.workers = workers
        self.max_platform_ids = max_platform_ids

    def Intersect(
        self, request_iterator: Iterator[vertical_pb2.PsiFrame], context: grpc.ServicerContext
    ) -> Iterator[vertical_pb2.PsiFrame]:
        try:
            first = next(request_iterator, None)
            if first is None or first.WhichOneof("body") != "start":
                raise PsiError("a PSI run starts with a 'start' frame")
            start = first.start
            caller = caller_identity(context, insecure=self.insecure, claimed=start.platform)
            caller.require({PLATFORM}, "run PSI with the bank")
            self._check_start(start)
            receiver = Receiver(self.bank_ids(), start.session_id, self.workers)
        except (YinqiError, IdentityError) as exc:
            code = (
                grpc.StatusCode.PERMISSION_DENIED
                if isinstance(exc, IdentityError)
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            log.warning("PSI refused: %s", exc)
            context.abort(code, str(exc))
            return
        log.info(
            "PSI %s with %s: %d bank ids, %d platform ids",
            start.session_id,
            caller.name,
            len(receiver.ids),
            start.count,
        )
        inbox = _Inbox(receiver, len(receiver.ids), int(start.count))
        reader = threading.Thread(target=inbox.consume, args=(request_iterator,), name="yinqi-psi-inbox", daemon=True)
        reader.start()
        yield vertical_pb2.PsiFrame(
            accept=vertical_pb2.PsiAccept(
                session_id=start.session_id, count=len(receiver.ids), chunk_size=self.chunk_size
            )
        )
        ids = receiver.ids
        for offset in range(0, len(ids), self.chunk_size):
            if inbox.error is not None or not context.is_active():
                break
            part = Receiver(ids[offset : offset + self.chunk_size], start.session_id, self.workers, receiver.key)
            yield vertical_pb2.PsiFrame(
                points=vertical_pb2.PsiPoints(kind=Kind.BANK_BLINDED, offset=offset, points=part.blinded())
            )
        inbox.done.wait()
        try:
            if inbox.error is not None:
                raise inbox.error
            result = receiver.result(
                inbox.joined(Kind.BANK_REBLINDED),
                inbox.joined(Kind.PLATFORM_BLINDED),
                cardinality_only=start.cardinality_only,
            )
            stored = self.store.save(start.session_id, caller.name, result)
        except (YinqiError, PsiStoreError) as exc:
            log.warning("PSI %s with %s refused: %s", start.session_id, caller.name, exc)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        log.info("PSI %s with %s: cardinality %d stored", start.session_id, caller.name, stored.cardinality)
        yield vertical_pb2.PsiFrame(
            done=vertical_pb2.PsiDone(cardinality=stored.cardinality, bank_count=stored.bank_count, stored=True)
        )

    def _check_start(self, start: vertical_pb2.PsiStart) -> None:
        if start.protocol != PROTOCOL:
            raise PsiError(f"protocol '{start.protocol}' is not supported; this bank speaks {PROTOCOL}")
        session = start.session_id
        if not (16 <= len(session) <= 64) or any(c not in "0123456789abcdef" for c in session):
            raise PsiError("session_id must be 16-64 lowercase hex characters")
        if self.store.seen(session):
            raise PsiError(f"PSI session {session} was already run; start a new session")
        if not 0 < start.count <= self.max_platform_ids:
            raise PsiError(f"the platform announces {start.count} ids; expected 1..{self.max_platform_ids}")


def register(server: grpc.Server, store: PsiStore, bank_ids: Callable[[], list[str]], **options: object) -> PsiService:
    service = PsiService(store, bank_ids, **options)  # type: ignore[arg-type]
    vertical_pb2_grpc.add_PsiServiceServicer_to_server(service, server)
    return service


def register_on_bank(server: grpc.Server, engine: object, *, insecure: bool) -> str:
    """The bank's main gRPC server hosts PSI too (`server.grpc_app.build_server`).

    The bank's merchant list is its vertical half, named by `YINQI_VERTICAL_DATA` (and
    `YINQI_VERTICAL_MAPPING`), read at each run; without it a run is refused with that hint.
    """
    from federation.config import setting
    from federation.psi.protocol import clean_ids
    from federation.vertical.data import load_mapping, load_party

    def bank_ids() -> list[str]:
        data = setting("vertical_data")
        if not data:
            raise PsiError("this bank has no vertical data configured (set YINQI_VERTICAL_DATA to its merchant file)")
        table = load_party(str(data), load_mapping(setting("vertical_mapping")), labelled=False, ignore_label=True)
        return clean_ids(table.ids, str(data))

    register(server, PsiStore(engine), bank_ids, insecure=insecure)  # type: ignore[arg-type]
    return "PsiService"
