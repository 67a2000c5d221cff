"""One run configuration for every engine: simulation, loopback deployment, CLI, demo, bench.

`FederationConfig.to_run_config()` flattens it into Flower's `run_config` (hyphenated keys,
scalar values); the ServerApp and ClientApp read it back with `from_run_config`. What differs
per platform (its file, its name, its ledger and budget) travels in each node's `node_config`
(`node_configs()`), as it would on a real SuperNode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from federation.errors import ConfigError
from federation.plan import DEFAULT_ROUNDS, SERVER_STRATEGY, UPDATE_BOUND, PlanRequest
from federation.units import DEFAULT_UNIT_COLUMN, check_unit_column

LIST_SEPARATOR = "|"
_OPTIONAL = (
    "positive",
    "test",
    "validation",
    "ledger_db",
    "epsilon_budget",
    "consent_db",
    "local_steps",
    "local_epochs",
    "batch_size",
    "lr",
    "momentum",
    "max_grad_norm",
)


class FederationConfig(BaseModel):
    """Everything one federated training run needs. Numbers must be finite (inf/nan refused)."""

    model_config = ConfigDict(allow_inf_nan=False)

    clients: list[Path] = Field(description="one private feature file per platform (CSV/Parquet)")
    platform_names: list[str] = Field(default_factory=list, description="platform names (default: file stems)")
    label: str = "default"
    positive: str | None = None
    rounds: int = Field(default=DEFAULT_ROUNDS, ge=1, le=10_000)
    epsilon: float = Field(default=8.0, gt=0)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    dp: bool = True
    secagg: bool = True
    unit_column: str = Field(
        default=DEFAULT_UNIT_COLUMN,
        description="the privacy unit: the id column whose rows are sampled and clipped together ('row': row-level DP)",
    )
    strategy: Literal["fedavg", "fedprox", "fedavgm", "fedadam"] = SERVER_STRATEGY
    mu: float = Field(default=0.01, ge=0)
    # Local training; None: the default plan (federation.plan), shown in the report.
    local_steps: int | None = Field(default=None, ge=1, le=100_000)
    local_epochs: int | None = Field(default=None, ge=1, le=10_000)
    batch_size: int | None = Field(default=None, ge=1)
    lr: float | None = Field(default=None, gt=0)
    momentum: float | None = Field(default=None, ge=0, lt=1)
    max_grad_norm: float | None = Field(default=None, gt=0)
    update_bound: float = Field(
        default=UPDATE_BOUND,
        gt=0,
        le=1e6,
        description="L2 bound on each platform's round update; SecAgg+'s clipping range",
    )
    validation: Path | None = Field(
        default=None, description="the bank's own labeled file; each round's aggregate must not make its loss worse"
    )
    exclude_after: int = Field(
        default=2, ge=1, description="a platform failing the bank's checks this many times in a row is excluded"
    )
    architecture: Literal["logistic", "mlp"] = "logistic"
    hidden: int = Field(default=16, ge=1)
    max_categories: int = Field(default=50, ge=1)
    seed: int = 0
    out: Path = Path("out/model")
    test: Path | None = None
    min_clients: int = Field(default=2, ge=1)
    ledger_db: str | None = Field(
        default=None, description="SQLAlchemy URL of the platforms' privacy ledger (default: SQLite in the out dir)"
    )
    epsilon_budget: float | None = Field(
        default=None,
        description="each platform's lifetime ε budget across runs in its ledger (default: none; the run's ε caps the run)",
    )
    consent_db: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the platforms' merchant consent records; when set, merchants without consent in force are left out",
    )
    node_wait_seconds: float = Field(default=120.0, gt=0)
    reproducible_noise: bool = Field(
        default=False,
        description="seeded DP noise (tests, benchmarks); each platform's policy must allow it, else it refuses",
    )

    @field_validator("clients")
    @classmethod
    def _at_least_one(cls, value: list[Path]) -> list[Path]:
        if not value:
            raise ValueError("give at least one --client file")
        return value

    @field_validator("unit_column")
    @classmethod
    def _unit(cls, value: str) -> str:
        return check_unit_column(value)

    @model_validator(mode="after")
    def _names(self) -> FederationConfig:
        if not self.platform_names:
            stems = [p.stem for p in self.clients]
            self.platform_names = (
                stems if len(set(stems)) == len(stems) else [f"{s}-{i + 1}" for i, s in enumerate(stems)]
            )
        if len(self.platform_names) != len(self.clients):
            raise ValueError("platform_names must name every client file")
        return self

    # -- Flower run_config / node_config ----------------------------------------------------
    def to_run_config(self) -> dict[str, Any]:
        """Flat Flower `run_config`: hyphenated keys, str/int/float/bool values."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            key = name.replace("_", "-")
            if name in ("clients", "platform_names"):
                value = LIST_SEPARATOR.join(str(Path(v).resolve()) if name == "clients" else str(v) for v in value)
                key = "client-files" if name == "clients" else "platform-names"
            elif value is None:
                value = ""
            elif isinstance(value, Path):
                value = str(value.resolve()) if name in ("out", "test", "validation") else str(value)
            out[key] = value
        out["num-clients"] = len(self.clients)
        return out

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> FederationConfig:
        """Rebuild the config from a Flower `run_config` (inverse of `to_run_config`)."""
        data: dict[str, Any] = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name == "client_files":
                data["clients"] = [Path(p) for p in str(value).split(LIST_SEPARATOR) if p]
            elif name == "platform_names":
                data["platform_names"] = [p for p in str(value).split(LIST_SEPARATOR) if p]
            elif name in cls.model_fields:
                data[name] = None if value == "" and name in _OPTIONAL else value
        try:
            return cls(**data)
        except ValueError as exc:
            raise ConfigError(f"run_config does not describe a federated run: {exc}") from None

    def plan_request(self) -> PlanRequest:
        """What the run asks of each platform's local training (None: the default plan)."""
        return PlanRequest.of(self)

    def ledger_url(self) -> str:
        return self.ledger_db or f"sqlite:///{(self.out / 'ledger.db').resolve()}"

    def node_configs(self) -> list[dict[str, Any]]:
        """Per-platform Flower `node_config` (what each platform's SuperNode is started with)."""
        nodes = []
        for path, name in zip(self.clients, self.platform_names, strict=True):
            node: dict[str, Any] = {
                "data-path": str(path.resolve()),
                "platform-name": name,
                "ledger-db": self.ledger_url(),
            }
            if self.epsilon_budget is not None:  # lifetime budget across runs; else the run's ε
                node["epsilon-budget"] = float(self.epsilon_budget)
            if self.consent_db:
                node["consent-db"] = self.consent_db
            nodes.append(node)
        return nodes
