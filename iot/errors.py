"""The one error type of the `iot` package."""

from __future__ import annotations

from federation.errors import YinqiError


class IotError(YinqiError):
    """A user mistake in IoT configuration or input: rules, schedules, broker URLs, devices."""
