"""The guard in front of every bank RPC: the role table covers every RPC the protos define, an
RPC missing from it is closed to everyone, and a handler's unexpected failure is one line."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from proto import alerts_pb2, alerts_pb2_grpc, bank_pb2, bank_pb2_grpc, platform_pb2, vertical_pb2
from proto.channel import connect
from server.security.calllog import CallLog
from server.security.guard import Guard
from server.security.roles import POLICY, ROLES
from tests.conftest import free_port


def test_every_rpc_of_every_service_has_a_rule_and_only_known_roles() -> None:
    # every service the bank hosts (the vertical EmbeddingService runs on a platform, not here)
    hosted = [
        *(s for module in (bank_pb2, platform_pb2, alerts_pb2) for s in module.DESCRIPTOR.services_by_name.values()),
        vertical_pb2.DESCRIPTOR.services_by_name["PsiService"],
    ]
    defined = {f"/{service.full_name}/{method.name}" for service in hosted for method in service.methods}
    assert set(POLICY) == defined
    assert all(rule.roles and rule.roles <= set(ROLES) for rule in POLICY.values())


class _Boom(alerts_pb2_grpc.AlertServiceServicer):
    def List(self, request, context):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("a bug")

    def Deliver(self, request, context):  # type: ignore[no-untyped-def]
        return alerts_pb2.Ack(accepted=True)


@pytest.fixture
def guarded(tmp_path, pki):  # type: ignore[no-untyped-def]
    policy = {k: v for k, v in POLICY.items() if not k.endswith("/Deliver")}  # Deliver left out
    log = CallLog(f"sqlite:///{tmp_path / 'bank.db'}")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[Guard(log, policy=policy)])
    alerts_pb2_grpc.add_AlertServiceServicer_to_server(_Boom(), server)
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key.read_bytes(), pki.server.cert.read_bytes())], pki.ca.read_bytes(), require_client_auth=True
    )
    address = f"127.0.0.1:{free_port()}"
    server.add_secure_port(address, credentials)
    server.start()
    yield address, log
    server.stop(grace=None)


def test_an_rpc_missing_from_the_policy_is_closed_to_everyone(guarded, pki) -> None:  # type: ignore[no-untyped-def]
    address, log = guarded
    with connect(address, pki.tls("monitor-1")) as channel, pytest.raises(grpc.RpcError) as closed:
        alerts_pb2_grpc.AlertServiceStub(channel).Deliver(alerts_pb2.Alert(), timeout=10)
    assert closed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert closed.value.details() == "AlertService/Deliver is not open to any caller"
    assert [(c.caller, c.method, c.status) for c in log.list()] == [
        ("monitor-1", "AlertService/Deliver", "PERMISSION_DENIED")
    ]


def test_an_unexpected_failure_is_internal_with_one_line(guarded, pki) -> None:  # type: ignore[no-untyped-def]
    address, _ = guarded
    with connect(address, pki.tls("auditor-1")) as channel, pytest.raises(grpc.RpcError) as failed:
        alerts_pb2_grpc.AlertServiceStub(channel).List(alerts_pb2.ListRequest(), timeout=10)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert (
        failed.value.details()
        == "internal error in AlertService/List (ZeroDivisionError); the bank's log has the details"
    )


def test_a_service_the_server_does_not_host_is_unimplemented(guarded, pki) -> None:  # type: ignore[no-untyped-def]
    address, _ = guarded
    with connect(address, pki.tls("ops")) as channel, pytest.raises(grpc.RpcError) as missing:
        bank_pb2_grpc.CreditServiceStub(channel).Get(bank_pb2.AccountRequest(account_id="CL-1"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
