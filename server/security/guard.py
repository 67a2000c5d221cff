"""The gRPC guard every bank service sits behind: who is calling, may they, and what happened.

`Guard` is a server interceptor. For each call it

1. reads the caller's identity from the verified client certificate and checks the revocation
   list (`UNAUTHENTICATED` with one line if it cannot);
2. checks the caller's role against `roles.POLICY` for that RPC (`PERMISSION_DENIED`, naming the
   roles that may call it; an RPC missing from the policy is closed to everyone);
3. writes state-changing calls to the call log before the handler runs and completes the record
   with the outcome; refusals are logged too;
4. turns a `YinqiError` into its status code with the one-line message, and anything unexpected
   into `INTERNAL` with a one-line message (the traceback stays in the bank's log).

Handlers learn who called from `current_caller()`. With `insecure=True` (plaintext, loopback
tests only) every caller is `roles.INSECURE`, which holds every role.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import grpc

from federation.errors import YinqiError
from server.security.calllog import CallLog, summarize
from server.security.identity import AuthError, RevocationList, caller_identity
from server.security.roles import INSECURE, POLICY, Identity, Rule, short_method

log = logging.getLogger(__name__)

_CALLER: ContextVar[Identity | None] = ContextVar("yinqi_bank_caller", default=None)

# A YinqiError's `kind` (see server.credit.errors.BankError) -> the status a caller sees.
STATUS_OF_KIND = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "refused": grpc.StatusCode.FAILED_PRECONDITION,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "forbidden": grpc.StatusCode.PERMISSION_DENIED,
}


def status_of(exc: YinqiError) -> grpc.StatusCode:
    return STATUS_OF_KIND.get(getattr(exc, "kind", "invalid"), grpc.StatusCode.INVALID_ARGUMENT)


def current_caller() -> Identity:
    """The identity of the caller of the gRPC call being handled in this thread."""
    who = _CALLER.get()
    if who is None:
        raise RuntimeError("current_caller() outside a call through server.security.guard.Guard")
    return who


def _same_kind(handler: grpc.RpcMethodHandler, behaviour: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A method handler of `handler`'s kind (unary/streaming) that runs `behaviour`."""
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class Guard(grpc.ServerInterceptor):
    """Authentication, authorisation and the call log for every RPC of one gRPC server.

    Parameters
    ----------
    call_log : where calls are recorded (None: not recorded; tests of the guard alone).
    revocations : the CA's revocation list (None: no revocation check).
    insecure : plaintext server: no certificates, every caller is `roles.INSECURE`.
    policy : RPC -> who may call it (default `roles.POLICY`).
    """

    def __init__(
        self,
        call_log: CallLog | None,
        revocations: RevocationList | None = None,
        *,
        insecure: bool = False,
        policy: Mapping[str, Rule] = POLICY,
    ) -> None:
        self.call_log = call_log
        self.revocations = revocations
        self.insecure = insecure
        self.policy = dict(policy)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        rule = self.policy.get(method)
        if rule is not None and handler.unary_unary is not None:
            return _same_kind(handler, self._guarded(method, rule, handler.unary_unary))
        if rule is not None and handler.stream_stream is not None:
            return _same_kind(handler, self._guarded_stream(method, rule, handler.stream_stream))
        short = short_method(method)
        message = f"{short} is not open to any caller"

        def closed(_request: Any, context: grpc.ServicerContext) -> Any:
            who: Identity | None
            try:
                who = INSECURE if self.insecure else caller_identity(context.auth_context(), self.revocations)
            except AuthError as exc:
                who = exc.identity
            self._log_refusal(who, short, None, "PERMISSION_DENIED", message, context.peer())
            context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

        return _same_kind(handler, closed)

    # -- the checks around one handler -----------------------------------------------------
    def _admit(
        self, short: str, rule: Rule, request: Any, context: grpc.ServicerContext
    ) -> tuple[Identity, int | None]:
        """Who calls, refused (the call aborts) unless their role may; the call log's record id."""
        peer = context.peer()
        try:
            who = INSECURE if self.insecure else caller_identity(context.auth_context(), self.revocations)
        except AuthError as exc:
            self._log_refusal(exc.identity, short, request, "UNAUTHENTICATED", str(exc), peer)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if not who.may(rule.roles):
            message = f"{who.name} ({who.role}) may not call {short}; it is open to {', '.join(sorted(rule.roles))}"
            self._log_refusal(who, short, request, "PERMISSION_DENIED", message, peer)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
        call_id = None
        if rule.changes_state and self.call_log is not None:
            call_id = self.call_log.start(who, short, summarize(request) if request is not None else "(stream)", peer)
        return who, call_id

    def _outcome(self, short: str, who: Identity, exc: Exception, context: grpc.ServicerContext) -> tuple[str, str]:
        """Abort the call for `exc` (raised by the handler); returns (status, detail) for the log."""
        if isinstance(exc, YinqiError):
            code = status_of(exc)
            context.abort(code, str(exc))
        code = context.code()  # set when the handler aborted the call itself
        if code is not None and code != grpc.StatusCode.OK:
            raw = context.details() or b""
            return code.name, raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        log.exception("%s failed for %s", short, who)
        detail = f"internal error in {short} ({type(exc).__name__}); the bank's log has the details"
        context.abort(grpc.StatusCode.INTERNAL, detail)
        return "INTERNAL", detail  # pragma: no cover - abort raises

    def _guarded(self, method: str, rule: Rule, inner: Callable[..., Any]) -> Callable[..., Any]:
        short = short_method(method)

        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            who, call_id = self._admit(short, rule, request, context)
            token = _CALLER.set(who)
            status, detail = "OK", ""
            try:
                return inner(request, context)
            except YinqiError as exc:
                status, detail = status_of(exc).name, str(exc)
                self._outcome(short, who, exc, context)
            except Exception as exc:
                status, detail = self._outcome(short, who, exc, context)
                raise
            finally:
                _CALLER.reset(token)
                if call_id is not None:
                    self._finish(call_id, status, detail)

        return behaviour

    def _guarded_stream(self, method: str, rule: Rule, inner: Callable[..., Any]) -> Callable[..., Any]:
        """The same checks for a bidirectional stream (e.g. PSI): admitted before the first
        message is read, recorded once for the whole stream."""
        short = short_method(method)

        def behaviour(requests: Any, context: grpc.ServicerContext) -> Any:
            who, call_id = self._admit(short, rule, None, context)
            status, detail = "OK", ""
            try:
                token = _CALLER.set(who)
                try:
                    replies = iter(inner(requests, context))
                finally:
                    _CALLER.reset(token)
                while True:
                    token = _CALLER.set(who)
                    try:
                        reply = next(replies)
                    except StopIteration:
                        return
                    finally:
                        _CALLER.reset(token)
                    yield reply
            except YinqiError as exc:
                status, detail = status_of(exc).name, str(exc)
                self._outcome(short, who, exc, context)
            except Exception as exc:
                status, detail = self._outcome(short, who, exc, context)
                raise
            finally:
                if call_id is not None:
                    self._finish(call_id, status, detail)

        return behaviour

    def _finish(self, call_id: int, status: str, detail: str) -> None:
        assert self.call_log is not None
        try:
            self.call_log.finish(call_id, status, detail)
        except Exception:  # the change is done; its record says "started" with the caller's name
            log.exception("could not complete call record %s", call_id)

    def _log_refusal(
        self, who: Identity | None, method: str, request: Any, status: str, detail: str, peer: str
    ) -> None:
        if self.call_log is None:
            return
        try:
            self.call_log.refused(who, method, summarize(request) if request is not None else "", status, detail, peer)
        except Exception:
            log.exception("could not record a refused call to %s", method)
