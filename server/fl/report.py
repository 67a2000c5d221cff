"""The run report (`report.json`): what ran, per round, per platform, and what it cost in ε."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from federation import files


@dataclass
class ClientRound:
    """One platform's part in one round."""

    platform: str
    examples: int = 0
    epsilon: float | None = None
    loss: float | None = None
    train_seconds: float | None = None
    clamped: int = 0
    refused: str | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    dp_steps: int | None = None
    dp_noise: str | None = None  # "os-entropy" | "seeded (reproducible)": what the platform drew from
    diverged: str | None = None


@dataclass
class RoundReport:
    round: int
    seconds: float = 0.0
    fit_seconds: float = 0.0
    aggregated: bool = False
    participants: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    clients: list[ClientRound] = field(default_factory=list)
    federated_auc: float | None = None
    federated_ks: float | None = None
    federated_loss: float | None = None
    test_auc: float | None = None
    test_ks: float | None = None


@dataclass
class Report:
    """Everything a bank needs to know about one federated run."""

    mode: str = "federated"
    engine: str = "simulation"
    # "running" while the rounds go on; "ok"; "failed" or "interrupted": `error` says why and
    # where, and no model was written.
    status: str = "ok"
    error: str | None = None
    current_round: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    platforms: list[str] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    initial: dict[str, float | None] = field(default_factory=dict)
    rounds: list[RoundReport] = field(default_factory=list)
    epsilon: dict[str, float] = field(default_factory=dict)
    dp_noise: dict[str, str] = field(default_factory=dict)  # platform -> noise source it drew from
    final: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0
    version_hash: str = ""
    model_dir: str = ""
    # The training population as aggregates (no rows), for model monitoring at the bank:
    # "stats" = the platforms' merged feature sketches from the preprocessing agreement,
    # "scores" = the last round's federated score histogram ({"bins": N, "counts": {bin: n}}).
    agreement: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        """Write the report whole (a reader never sees half of it)."""
        files.write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str))

    @property
    def noise_summary(self) -> str | None:
        """Which DP noise ran: one source for all platforms, or each platform's."""
        kinds = sorted(set(self.dp_noise.values()))
        if not kinds:
            return None
        if len(kinds) == 1:
            return kinds[0]
        return "mixed: " + ", ".join(f"{p} {k}" for p, k in sorted(self.dp_noise.items()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        data = dict(data)
        rounds = []
        for r in data.pop("rounds", []):
            r = dict(r)
            r["clients"] = [ClientRound(**c) for c in r.get("clients", [])]
            rounds.append(RoundReport(**r))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(rounds=rounds, **known)

    @classmethod
    def read(cls, path: str | Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def round_seconds(self) -> list[float]:
        return [r.seconds for r in self.rounds]
