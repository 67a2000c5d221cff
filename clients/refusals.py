"""The platform's side of a refusal: one line in its log and a record `client status` shows.

Whatever the node refuses (an unapproved ClientApp, a run below its privacy policy, a round past
its budget) is logged as one WARNING line and appended to the node's refusal log (JSON lines, path
in the node config under `yinqi-refusal-log`, written by `yinqi client up`). The bank gets the same
reason in the node's reply, and its run report keeps it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.clock import utcnow
from federation.errors import DataError

LOG_KEY = "yinqi-refusal-log"
log = logging.getLogger("yinqi.platform")


@dataclass(frozen=True)
class Refusal:
    at: str
    run_id: str
    stage: str
    reason: str

    def line(self) -> str:
        return f"refused run {self.run_id} ({self.stage}): {self.reason}"


def record_refusal(node_config: dict[str, Any], run_id: object, stage: str, reason: str) -> Refusal:
    """Log the refusal and append it to the node's refusal log (when it has one)."""
    refusal = Refusal(utcnow().isoformat(), str(run_id), stage, " ".join(str(reason).split()))
    log.warning("%s", refusal.line())
    path = node_config.get(LOG_KEY)
    if path:
        # One short line per write with O_APPEND: concurrent tasks do not interleave.
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (json.dumps(refusal.__dict__, ensure_ascii=False) + "\n").encode())
        finally:
            os.close(fd)
    return refusal


def read_refusals(path: str | Path) -> list[Refusal]:
    """Every refusal recorded in `path` (oldest first); a line that is not a record is skipped
    only if it is the last, half-written one."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    lines = path.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines):
        try:
            data = json.loads(line)
            out.append(Refusal(str(data["at"]), str(data["run_id"]), str(data["stage"]), str(data["reason"])))
        except (ValueError, KeyError, TypeError):
            if number != len(lines) - 1:
                raise DataError(
                    "not a refusal record; expected one JSON object per line", file=str(path), row=number + 1
                ) from None
    return out
