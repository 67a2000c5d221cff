"""The federated run's error type."""

from __future__ import annotations

from federation.errors import YinqiError


class FederationError(YinqiError):
    """A federated run that cannot go on: too few usable platforms, or a round in which no
    platform's update was aggregated (never reported as a success)."""


class RunInterrupted(FederationError):
    """The run was stopped (Ctrl-C) before its last round: no model, the report says where."""

    exit_code = 130
    run_id: str | None = None  # the Flower run, to find its ε in the platforms' ledgers


class TrainingDiverged(FederationError):
    """A platform's local training, or the aggregate, stopped being finite: no model is written."""
