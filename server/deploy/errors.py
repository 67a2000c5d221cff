"""The one error type of the deployment engine (a user-fixable problem, one line)."""

from __future__ import annotations

from federation.errors import ProcessError


class DeployError(ProcessError):
    """A deployment that cannot start or finish: a port, a key, a certificate, a refused node."""
