"""The part of the bank's run configuration a platform needs, read from Flower's `run_config`.

The bank writes the run config (`server.fl.config.FederationConfig.to_run_config`); a platform
only reads the keys below, so `clients` never imports `server`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from federation.errors import ConfigError


@dataclass(frozen=True)
class ClientRunConfig:
    label: str = "default"
    positive: str | None = None
    rounds: int = 10
    epsilon: float = 8.0
    delta: float = 1e-5
    dp: bool = True
    secagg: bool = True
    local_epochs: int = 2
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    max_grad_norm: float = 1.0
    architecture: str = "logistic"
    hidden: int = 16
    seed: int = 0
    secagg_clip: float = 8.0
    reproducible_noise: bool = False  # seeded DP noise: only if the platform's policy allows it

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
            try:
                if name == "positive":
                    values[name] = None if raw in ("", None) else str(raw)
                elif field.type in ("bool",):
                    values[name] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
                elif field.type == "int":
                    values[name] = int(raw)
                elif field.type == "float":
                    values[name] = float(raw)
                    if not math.isfinite(values[name]):
                        raise ValueError("not finite")
                else:
                    values[name] = str(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"the bank's run config has {key}={raw!r}, which is not a {field.type} ({exc})"
                ) from None
        return cls(**values)
