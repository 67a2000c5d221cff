"""The bank deployment's state file: which processes run, on which ports, with which certs.

`yinqi bank up` writes `<data dir>/bank/deploy.json`; `bank register/status/train/down` read it,
so each is a separate command (and a separate shell, or a cron job) like on a real server.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from server.deploy.errors import DeployError


def bank_dir(data_dir: Path | None = None) -> Path:
    from federation.config import data_dir as default_data_dir

    path = Path(data_dir) if data_dir else default_data_dir() / "bank"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class BankState:
    """What `bank up` started. `superlink_address` is the public one platforms dial (the Fleet
    gate); `control_address` is the SuperLink itself, on loopback, for the operator's commands."""

    superlink_address: str
    superlink_pid: int
    flwr_home: str
    log_dir: str
    database: str
    control_address: str = ""
    gate_pid: int | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    certs_dir: str | None = None
    services_address: str | None = None
    services_pid: int | None = None
    started: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.ca is not None

    @property
    def operator_address(self) -> str:
        """Where the Control API is reached (loopback; older state files: the SuperLink address)."""
        return self.control_address or self.superlink_address

    def write(self, directory: Path) -> Path:
        path = Path(directory) / "deploy.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, directory: Path) -> BankState:
        path = Path(directory) / "deploy.json"
        if not path.is_file():
            raise DeployError(f"{path}: the bank is not up (run `yinqi bank up` first)")
        data = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @staticmethod
    def clear(directory: Path) -> None:
        (Path(directory) / "deploy.json").unlink(missing_ok=True)
