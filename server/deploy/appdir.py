"""The Flower app directory a run is built from: a generated `pyproject.toml`, nothing else.

The FAB only names the components (`server.fl.app:app`, `clients.app:app`) that every node
already has installed (the yinqi package), plus the run-config defaults; no code travels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REAL_SERVERAPP = "server.fl.app:app"
REAL_CLIENTAPP = "clients.app:app"
TOY_SERVERAPP = "yinqi.harness.toyapp:serverapp"
TOY_CLIENTAPP = "yinqi.harness.toyapp:clientapp"


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """Flower run-config values: str/int/float/bool; None dropped, paths as strings."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, Path):
            out[key] = str(value)
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def write_app_dir(
    path: Path,
    run_config: dict[str, Any],
    *,
    serverapp: str = REAL_SERVERAPP,
    clientapp: str = REAL_CLIENTAPP,
    name: str = "yinqi-credit",
) -> Path:
    import tomli_w

    path.mkdir(parents=True, exist_ok=True)
    doc = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {
            "name": name,
            "version": "1.0.0",
            "description": "yinqi federated credit scoring (components come from the installed yinqi package)",
            "license": "Apache-2.0",
            "dependencies": [],
        },
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "yinqi",
                    "components": {"serverapp": serverapp, "clientapp": clientapp},
                    "config": _flat(run_config),
                }
            }
        },
    }
    (path / "pyproject.toml").write_text(tomli_w.dumps(doc))
    return path


def write_flwr_home(home: Path, connections: dict[str, dict[str, Any]], default: str) -> Path:
    """`$FLWR_HOME/config.toml` with SuperLink connections, so `flwr ... <conn>` works too."""
    import tomli_w

    home.mkdir(parents=True, exist_ok=True)
    doc = {"superlink": {"default": default, **connections}}
    (home / "config.toml").write_text(tomli_w.dumps(doc))
    return home
