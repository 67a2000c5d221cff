"""The one error type of the bank services (registry, scoring, credit lines).

`kind` tells the gRPC layer which status code a refusal maps to; the message is the one line a
user sees, from the CLI and over gRPC alike.
"""

from __future__ import annotations

from typing import Literal

from federation.errors import YinqiError

ErrorKind = Literal["invalid", "refused", "not_found", "forbidden"]


class BankError(YinqiError):
    """A bad request to the bank's services; raised before anything is stored.

    Parameters
    ----------
    message:
        One line: what was refused, which record, what was expected.
    kind:
        ``"invalid"`` for malformed input (gRPC INVALID_ARGUMENT), ``"refused"`` for a request
        the current state does not allow, e.g. a draw over the limit (FAILED_PRECONDITION),
        ``"not_found"`` for an unknown account, merchant or model version (NOT_FOUND),
        ``"forbidden"`` for a caller acting on another party's records, e.g. a platform
        reporting or reading a merchant another platform owns (PERMISSION_DENIED).
    """

    def __init__(self, message: str, kind: ErrorKind = "invalid") -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
