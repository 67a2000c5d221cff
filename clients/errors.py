"""The platform side's error type: a problem the platform's operator can fix (one line)."""

from __future__ import annotations

from federation.errors import ProcessError


class NodeError(ProcessError):
    """The platform's node cannot start or stopped: a key, a certificate, the bank refused it."""
