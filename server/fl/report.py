"""The run report (`report.json`): what ran, per round, per platform, what it cost in ε and
about which privacy unit, how each platform trained (the plan), and what the bank's checks found."""

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
    unit: str | None = None  # the privacy unit ε is about: "merchant_id" (or another id column) or "row"
    units: int | None = None  # how many units (merchants) the platform trained on
    rows: int | None = None
    lr: float | None = None
    max_grad_norm: float | None = None
    update_clipped: bool = False  # the update was clipped to the run's norm bound


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
    # The bank's checks: the aggregate's norm and validation loss; a refused round keeps the old
    # model and says why; a round that left one platform out to find a poisoning one names it.
    check: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None
    left_out: str | None = None
    platform_auc: dict[str, float] = field(default_factory=dict)  # each platform's AUC on its own rows
    flagged: dict[str, str] = field(default_factory=dict)  # evaluations left out of the federated AUC
    excluded: dict[str, str] = field(default_factory=dict)  # platforms excluded after this round


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
    # platform -> the privacy unit its ε is about and how many it has ("merchant_id": 300)
    privacy_unit: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)  # how each platform trained, and why
    # platform -> ε from the RDP accountant (reported) and Opacus' PRV accountant (independent)
    accounting: dict[str, dict[str, Any]] = field(default_factory=dict)
    weak_guarantee: str | None = None  # ε above the sane ceiling: said plainly
    excluded: dict[str, str] = field(default_factory=dict)  # platform -> why the bank excluded it
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

    @property
    def unit_summary(self) -> str | None:
        """The privacy unit in one phrase: `merchant_id` for all platforms, or each platform's."""
        units = sorted({str(v.get("unit")) for v in self.privacy_unit.values()})
        if not units:
            return None
        if len(units) == 1:
            return units[0]
        return "mixed: " + ", ".join(f"{p} {v.get('unit')}" for p, v in sorted(self.privacy_unit.items()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        data = dict(data)
        rounds = []
        for r in data.pop("rounds", []):
            r = dict(r)
            r["clients"] = [
                ClientRound(**{k: v for k, v in c.items() if k in ClientRound.__dataclass_fields__})
                for c in r.get("clients", [])
            ]
            rounds.append(RoundReport(**{k: v for k, v in r.items() if k in RoundReport.__dataclass_fields__}))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(rounds=rounds, **known)

    @classmethod
    def read(cls, path: str | Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def round_seconds(self) -> list[float]:
        return [r.seconds for r in self.rounds]
