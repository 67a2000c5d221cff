"""Named fault points: where a test makes the bank's process die mid-operation.

`point(name)` does nothing unless the environment variable `YINQI_FAULT_KILL_AT` equals `name`,
in which case the process kills itself with SIGKILL on the spot (no clean-up, no flush), as a
power cut would. Tests start a real `yinqi` process with the variable set to prove that a
hand-off which must end on chain (an alert, a model) is whole or absent after such a death.
"""

from __future__ import annotations

import os
import signal

ENV = "YINQI_FAULT_KILL_AT"

ALERT_STORED = "alert-intake:stored"  # the alert row is written, its anchor leaf not yet
MODEL_STORED = "model-register:stored"  # the version row and files are written, its leaf not yet


def point(name: str) -> None:
    """Die here (SIGKILL) when the test asked for it; otherwise return at once."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
