"""The part of the bank's run configuration a platform needs, read from Flower's `run_config`.

The bank writes the run config (`server.fl.config.FederationConfig.to_run_config`); a platform
only reads the keys below, so `clients` never imports `server`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from federation.errors import ConfigError
from federation.plan import PlanRequest


@dataclass(frozen=True)
class ClientRunConfig:
    """Empty optional settings ("" in the run config) mean: the default plan (`federation.plan`)."""

    label: str = "default"
    positive: str | None = None
    rounds: int = 10
    epsilon: float = 8.0
    delta: float = 1e-5
    dp: bool = True
    secagg: bool = True
    unit_column: str = "merchant_id"  # the privacy unit; "row" is the explicit row-level opt-in
    local_steps: int | None = None
    local_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    max_grad_norm: float | None = None
    update_bound: float = 5.0  # L2 bound on a round's update; SecAgg+'s clipping range
    architecture: str = "logistic"
    hidden: int = 16
    seed: int = 0
    reproducible_noise: bool = False  # seeded DP noise: only if the platform's policy allows it

    def __post_init__(self) -> None:
        """Refuse settings no honest bank sends (a platform must not hang on a million steps)."""
        limits: dict[str, tuple[float, float]] = {
            "rounds": (1, 10_000),
            "local_steps": (1, 100_000),
            "local_epochs": (1, 10_000),
            "batch_size": (1, 10**9),
            "lr": (0.0, math.inf),
            "momentum": (0.0, 0.999),
            "max_grad_norm": (0.0, math.inf),
            "update_bound": (0.0, math.inf),
            "hidden": (1, 4096),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if value is not None and not (low <= value <= high and (value > 0 or name == "momentum")):
                expected = "a number above 0" if high == math.inf else f"{low:g} to {high:g}"
                raise ConfigError(f"the bank's run config has {name.replace('_', '-')}={value!r}; expected {expected}")
        if not self.unit_column.strip() or any(ch in self.unit_column for ch in "|\n\r\x00"):
            raise ConfigError(f"the bank's run config has unit-column={self.unit_column!r}; expected a column name")

    def plan_request(self) -> PlanRequest:
        """What the run asks of a platform's local training (None: the default)."""
        return PlanRequest.of(self)

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> ClientRunConfig:
        """The platform's reading of the bank's run config; a value that is not what the key
        needs (text for a number, a non-finite number) is a `ConfigError` naming the key."""
        values: dict[str, Any] = {}
        for name, field in cls.__dataclass_fields__.items():
            key = name.replace("_", "-")
            if key not in run_config:
                continue
            raw = run_config[key]
            kind = str(field.type).replace(" | None", "")
            try:
                if name == "positive":
                    values[name] = None if raw in ("", None) else str(raw)
                elif raw in ("", None) and str(field.type).endswith("| None"):
                    values[name] = None
                elif kind == "bool":
                    values[name] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
                elif kind == "int":
                    values[name] = int(raw)
                elif kind == "float":
                    values[name] = float(raw)
                    if not math.isfinite(values[name]):
                        raise ValueError("not finite")
                else:
                    values[name] = str(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"the bank's run config has {key}={raw!r}, which is not a {kind} ({exc})") from None
        return cls(**values)
