"""The one error type of the deployment engine (a user-fixable problem, one line)."""

from __future__ import annotations

from federation.errors import YinqiError


class DeployError(YinqiError):
    """A deployment that cannot start or finish: a port, a key, a certificate, a refused node."""
