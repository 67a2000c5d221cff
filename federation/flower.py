"""How every Flower process of a deployment is started: its programs and its environment.

Both sides start Flower programs (the bank a SuperLink, a platform a SuperNode); both take the
programs from the running interpreter's environment and give them a private `FLWR_HOME`, no
telemetry and fast SuperExec task polls.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def flwr_bin(name: str) -> str:
    """A console script of the running interpreter's environment (flower-superlink, ...)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def base_env(flwr_home: Path) -> dict[str, str]:
    """Environment of every Flower process: private FLWR_HOME, no telemetry, fast task polls."""
    return {
        "FLWR_HOME": str(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        # Documented SuperExec knob: how often it asks for a task to launch (default 1 s).
        "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.05",
        "PYTHONUNBUFFERED": "1",
        # Flower starts its helpers (flower-superexec, flwr-serverapp) by name: same venv.
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
