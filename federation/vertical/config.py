"""One vertical run's settings, as the bank starts it and as both apps read it back.

`VerticalConfig.to_run_config()` flattens it into Flower's `run_config`; the bank's ServerApp
and the platform's ClientApp read it with `from_run_config`. What belongs to the platform (its
file, its database, its own privacy policy, where it keeps its half of the model) is in its
SuperNode's `node_config` (`PlatformNodeConfig`), never in what the bank sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from federation.errors import ConfigError

RUN_PREFIX = "vfl-"


class VerticalConfig(BaseModel):
    """Everything the bank decides for one vertical training run."""

    bank_data: Path = Field(description="the bank's half: merchant id, its features, the label (CSV/Parquet)")
    session: str = Field(description="the PSI session that aligned the bank with the platform")
    out: Path = Path("out/vertical")
    bank_mapping: Path | None = None
    positive: str | None = None
    bank_db: str | None = Field(default=None, description="the bank's database (PSI results, label ledger)")
    embedding_dim: int = Field(default=4, ge=1, le=64)
    hidden: int = Field(default=16, ge=0, le=512)
    epochs: int = Field(default=5, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=8, le=65536)
    lr: float = Field(default=0.05, gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    embedding_clip: float = Field(default=1.0, gt=0)
    label_dp: Literal["rr", "gaussian", "off"] = "rr"
    label_epsilon: float = Field(default=2.0, gt=0, le=100)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    gradient_clip: float = Field(default=0.1, gt=0)
    feature_epsilon: float | None = Field(default=None, gt=0, le=1000)
    label_epsilon_budget: float | None = Field(default=None, gt=0)
    test_share: float = Field(default=0.2, ge=0, lt=1)
    seed: int = 0
    reproducible: bool = Field(default=False, description="seed DP noise from `seed` (tests, benchmarks only)")
    node_wait_seconds: float = Field(default=120.0, gt=0)

    def to_run_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if value is None:
                value = ""
            elif isinstance(value, Path):
                value = str(value.resolve())
            out[RUN_PREFIX + name.replace("_", "-")] = value
        return out

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> VerticalConfig:
        data: dict[str, Any] = {}
        for key, value in run_config.items():
            if not key.startswith(RUN_PREFIX):
                continue
            name = key[len(RUN_PREFIX) :].replace("-", "_")
            if name in cls.model_fields:
                data[name] = None if value == "" else value
        try:
            return cls(**data)
        except ValueError as exc:
            raise ConfigError(f"run_config does not describe a vertical run: {exc}") from None


class PlatformNodeConfig(BaseModel):
    """What a platform's SuperNode is started with for vertical runs (its own choices)."""

    data_path: Path
    platform_name: str = "platform"
    mapping_path: Path | None = None
    platform_db: str | None = None
    consent_db: str | None = Field(default=None, description="when set, only merchants with consent in force train")
    model_dir: Path = Path("out/vertical-platform")
    feature_epsilon: float | None = Field(default=None, gt=0, description="this platform's own DP floor on embeddings")
    epsilon_budget: float | None = Field(default=None, gt=0, description="lifetime ε budget across runs")

    def to_node_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            out[name.replace("_", "-")] = str(value.resolve()) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_node_config(cls, node_config: dict[str, Any]) -> PlatformNodeConfig:
        data = {k.replace("-", "_"): v for k, v in node_config.items() if k.replace("-", "_") in cls.model_fields}
        if "data_path" not in data:
            raise ConfigError(
                'this SuperNode has no "data-path" in its node config; start it with --node-config "data-path=FILE"'
            )
        try:
            return cls.model_validate({k: (None if v == "" else v) for k, v in data.items()})
        except ValueError as exc:
            raise ConfigError(f"node config: {exc}") from None
