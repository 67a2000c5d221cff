"""The federated run's error type."""

from __future__ import annotations

from federation.errors import YinqiError


class FederationError(YinqiError):
    """A federated run that cannot go on: too few usable platforms, or a round in which no
    platform's update was aggregated (never reported as a success)."""
