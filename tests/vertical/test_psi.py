"""PSI between the bank and a platform: correct at every overlap, nothing in the clear."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest

from clients.vertical.psi_client import run_psi
from clients.vertical.store import SessionBook
from federation.psi import group
from federation.psi.protocol import PsiError, Receiver, Sender, clean_ids, new_session
from proto import vertical_pb2, vertical_pb2_grpc
from proto.channel import RemoteError, connect


def _sets(n: int, overlap: float) -> tuple[list[str], list[str]]:
    shared = int(n * overlap)
    bank = [f"M{i:06d}" for i in range(n)]
    platform = [f"M{i:06d}" for i in range(n - shared, 2 * n - shared)]
    return bank, platform


@pytest.mark.parametrize("overlap", [0.0, 0.01, 0.3, 0.5, 0.99, 1.0])
def test_the_bank_learns_exactly_the_shared_merchants_at_any_overlap(
    psi_server, pki, tmp_path: Path, overlap: float
) -> None:
    bank, platform = _sets(600, overlap)
    server = psi_server(bank)
    book = SessionBook(f"sqlite:///{tmp_path / 'platform.db'}")
    outcome = run_psi(server.channel(pki.client(pki.platform)), platform, bank=server.address, book=book)
    expected = sorted(set(bank) & set(platform))
    stored = server.store.get(outcome.session_id)
    assert outcome.cardinality == stored.cardinality == len(expected)
    assert sorted(stored.ids) == expected
    assert stored.platform == "platform-a"  # from the client certificate, not from the message
    order = book.get(outcome.session_id).order
    assert all(order[handle] == merchant for merchant, handle in stored.matches or ())
    assert sorted(order) == sorted(platform)


def test_cardinality_only_stores_the_count_and_no_ids(psi_server, pki, tmp_path: Path) -> None:
    bank, platform = _sets(400, 0.25)
    server = psi_server(bank)
    outcome = run_psi(
        server.channel(pki.client(pki.platform)),
        platform,
        bank=server.address,
        cardinality_only=True,
        book=SessionBook(f"sqlite:///{tmp_path / 'p.db'}"),
    )
    stored = server.store.get(outcome.session_id)
    assert (outcome.cardinality, stored.cardinality, stored.matches) == (100, 100, None)


def test_the_receiver_cannot_link_shuffled_reblinded_values_to_its_ids() -> None:
    ids = [f"M{i}" for i in range(300)]
    session = new_session()
    receiver, sender = Receiver(ids, session), Sender(ids, session)
    doubled = sender.reblind(receiver.blinded())
    shuffled = Sender.shuffle(doubled)
    assert sorted(group_split(shuffled)) == sorted(group_split(doubled))
    same_place = sum(a == b for a, b in zip(group_split(shuffled), group_split(doubled), strict=True))
    assert same_place < 10  # a random permutation of 300 fixes ~1 point


def group_split(data: bytes) -> list[bytes]:
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def test_nothing_that_crosses_the_wire_reveals_a_non_shared_id(psi_server, pki, tmp_path: Path) -> None:
    """Every frame both ways, as bytes: no id, no hash of an id, no unblinded group element."""
    bank, platform = _sets(300, 0.5)
    server = psi_server(bank)
    wire: dict[str, list[bytes]] = {"sent": [], "received": []}
    outcome = run_psi(
        server.channel(pki.client(pki.platform)),
        platform,
        bank=server.address,
        book=SessionBook(f"sqlite:///{tmp_path / 'p.db'}"),
        tap=lambda direction, data: wire[direction].append(data),
    )
    sent, received = b"".join(wire["sent"]), b"".join(wire["received"])
    assert len(received) >= 300 * 32 and len(sent) >= 2 * 300 * 32  # the run really went over the wire
    session = outcome.session_id.encode()

    def forms(merchant: str) -> list[bytes]:
        raw = merchant.encode()
        return [
            raw,
            hashlib.sha256(raw).digest(),
            hashlib.sha256(raw).hexdigest().encode(),
            hashlib.sha512(raw).digest()[:32],
            group.id_digest(merchant, session)[:32],
            group.hash_to_group([merchant], session),  # H(id) unblinded
        ]

    bank_only = set(bank) - set(platform)
    platform_only = set(platform) - set(bank)
    for merchant in bank_only:  # what the platform received
        assert not any(form in received for form in forms(merchant)), merchant
    for merchant in platform_only:  # what the bank received
        assert not any(form in sent for form in forms(merchant)), merchant
    for merchant in set(bank) & set(platform):  # shared ids never travel in the clear either
        assert merchant.encode() not in sent + received


def test_two_sessions_with_the_same_ids_share_no_value(psi_server, pki, tmp_path: Path) -> None:
    bank, platform = _sets(200, 0.5)
    server = psi_server(bank)
    captured: list[set[bytes]] = []
    for n in range(2):
        frames: list[bytes] = []
        run_psi(
            server.channel(pki.client(pki.platform)),
            platform,
            bank=server.address,
            book=SessionBook(f"sqlite:///{tmp_path / f'p{n}.db'}"),
            tap=lambda direction, data, frames=frames: frames.append(data) if direction == "sent" else None,
        )
        points = [vertical_pb2.PsiFrame.FromString(f).points.points for f in frames]
        captured.append({p for chunk in points for p in group_split(chunk)})
    assert len(captured[0]) == len(captured[1]) == 200 + 200  # own blinded ids + re-blinded bank ids
    assert not captured[0] & captured[1]


@pytest.mark.parametrize(
    ("who", "ca", "expected"),
    [
        ("auditor", None, "PERMISSION_DENIED"),
        ("no_role", None, "PERMISSION_DENIED"),
        ("platform_server", None, "UNAVAILABLE"),  # a service certificate is no client: the handshake fails
        ("stranger", "stranger", "UNAVAILABLE"),
    ],
)
def test_only_a_platform_certificate_from_the_banks_ca_may_run_psi(
    psi_server, pki, tmp_path: Path, who, ca, expected
) -> None:
    server = psi_server(["M1", "M2"])
    tls = pki.client(getattr(pki, who), pki.stranger_ca if ca == "stranger" else None)
    with pytest.raises(RemoteError) as refused:
        run_psi(server.channel(tls), ["M1"], bank=server.address, book=SessionBook(f"sqlite:///{tmp_path / 'p.db'}"))
    assert refused.value.code == expected
    assert server.store.list() == []


def _raw_run(channel: grpc.Channel, frames: list[vertical_pb2.PsiFrame]) -> list[vertical_pb2.PsiFrame]:
    stub = vertical_pb2_grpc.PsiServiceStub(channel)
    return list(stub.Intersect(iter(frames), timeout=30))


def _start(session: str, count: int) -> vertical_pb2.PsiFrame:
    return vertical_pb2.PsiFrame(
        start=vertical_pb2.PsiStart(session_id=session, count=count, protocol="ecdh-ristretto255-sha512/v1")
    )


def _points(kind: int, offset: int, data: bytes) -> vertical_pb2.PsiFrame:
    return vertical_pb2.PsiFrame(points=vertical_pb2.PsiPoints(kind=kind, offset=offset, points=data))


KIND = vertical_pb2.PsiPoints.Kind


def test_a_hostile_platform_is_refused_and_nothing_is_stored(psi_server, pki) -> None:
    server = psi_server(["M1", "M2", "M3"])
    channel = server.channel(pki.client(pki.platform))
    session = new_session()
    bogus = b"\xff" * 32  # not a Ristretto255 encoding
    cases = {
        "not a group element": [_start(session, 1), _points(KIND.PLATFORM_BLINDED, 0, bogus)],
        "more values than announced": [
            _start(new_session(), 1),
            _points(KIND.PLATFORM_BLINDED, 0, group.hash_to_group(["a", "b"], b"x")),
        ],
        "out of order": [_start(new_session(), 2), _points(KIND.PLATFORM_BLINDED, 1, group.hash_to_group(["a"], b"x"))],
        "too few re-blinded values": [
            _start(new_session(), 1),
            _points(KIND.PLATFORM_BLINDED, 0, group.hash_to_group(["a"], b"x")),
        ],
        "a huge announced set": [_start(new_session(), 10**12)],
        "a bad session id": [_start("not-hex!", 1)],
    }
    for what, frames in cases.items():
        with pytest.raises(grpc.RpcError) as refused:
            _raw_run(channel, frames)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
    assert server.store.list() == []


def test_a_replayed_session_is_refused(psi_server, pki, tmp_path: Path) -> None:
    server = psi_server(["M1", "M2"])
    outcome = run_psi(
        server.channel(pki.client(pki.platform)),
        ["M2"],
        bank=server.address,
        book=SessionBook(f"sqlite:///{tmp_path / 'p.db'}"),
    )
    with pytest.raises(grpc.RpcError) as refused:
        _raw_run(server.channel(pki.client(pki.platform)), [_start(outcome.session_id, 1)])
    assert "already" in (refused.value.details() or "")
    assert len(server.store.list()) == 1


def test_a_bank_announcing_more_ids_than_the_platform_allows_is_refused(psi_server, pki, tmp_path: Path) -> None:
    server = psi_server([f"M{i}" for i in range(50)])
    with pytest.raises(PsiError, match="announces 50 ids"):
        run_psi(
            server.channel(pki.client(pki.platform)),
            ["M1"],
            bank=server.address,
            max_bank_ids=10,
            book=SessionBook(f"sqlite:///{tmp_path / 'p.db'}"),
        )


def test_ids_must_be_present_and_unique_naming_the_row() -> None:
    with pytest.raises(PsiError, match="row 3: merchant id 'A' repeats row 1"):
        clean_ids(["A", "B", " A "], "platform.csv")
    with pytest.raises(PsiError, match="row 2: empty merchant id"):
        clean_ids(["A", "  "], "platform.csv")


def test_blinding_commutes_and_rejects_points_off_the_group() -> None:
    points = group.hash_to_group(["M1", "M2"], b"s")
    a, b = group.random_scalar(), group.random_scalar()
    assert group.multiply(group.multiply(points, a), b) == group.multiply(group.multiply(points, b), a)
    assert group.multiply(points, a) != points
    with pytest.raises(group.GroupError, match="point 1"):
        group.multiply(points[:32] + b"\x00" * 32, a)  # the identity is refused


def test_the_banks_main_grpc_server_hosts_psi_for_its_configured_merchants(pki, tmp_path: Path, monkeypatch) -> None:
    from server.grpc_app import build_server
    from server.security.ca import CertSet
    from server.vertical.store import PsiStore

    url = f"sqlite:///{tmp_path / 'bank.db'}"
    server = build_server("127.0.0.1:0", url, CertSet.in_dir(pki.ca.parent), tmp_path / "models")
    assert "PsiService" in server.services
    server.start()
    try:
        address = f"127.0.0.1:{server.bound_port}"
        book = SessionBook(f"sqlite:///{tmp_path / 'p.db'}")
        monkeypatch.delenv("YINQI_VERTICAL_DATA", raising=False)
        with pytest.raises(RemoteError, match="no vertical data configured"):
            run_psi(connect(address, pki.client(pki.platform)), ["M1"], bank=address, book=book)
        (tmp_path / "bank.csv").write_text("merchant_id,age,default\nM1,3,0\nM2,4,1\n")
        monkeypatch.setenv("YINQI_VERTICAL_DATA", str(tmp_path / "bank.csv"))
        outcome = run_psi(connect(address, pki.client(pki.platform)), ["M2", "M3"], bank=address, book=book)
    finally:
        server.stop(0)
    assert PsiStore(url).get(outcome.session_id).ids == ["M2"]
