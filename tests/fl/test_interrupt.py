"""Ctrl-C during `yinqi train` (issue 11's reproduction: SIGINT at round 19 of 20 exited 130 with
no message, no model and no report, while the platforms' ledgers had recorded ε)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_sigint_near_the_end_says_where_it_stopped_and_leaves_ledger_and_outputs_consistent(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from clients.ledger import PrivacyLedger

    files, test = fl_files
    out = tmp_path / "model"
    clients = [arg for f in files for arg in ("--client", str(f))]
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "yinqi", "train", *clients, "--rounds", "20", "--local-epochs", "1"),
            *("--batch-size", "64", "--test", str(test), "--out", str(out)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    report_path = out / "report.json"
    # a few rounds before the end, not the last: on a busy machine this poll can lag a round
    # or two behind the run, and a signal that comes after the run ended tests nothing
    near_the_end = 17
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # poll the progress the run writes
        try:
            if json.loads(report_path.read_text()).get("current_round", 0) >= near_the_end:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert proc.poll() is None, f"train ended before round {near_the_end}: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 130
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    report = json.loads(report_path.read_text())
    stopped = report["current_round"]
    assert near_the_end <= stopped <= 20
    # the round it stopped in, unless the signal came after the last round was evaluated and
    # before the model was written: then all 20 are complete, and still no model is written
    done = sum(1 for r in report["rounds"] if r["aggregated"] and r["federated_auc"] is not None)
    assert done == stopped - 1 or (stopped == 20 and done == 20)
    assert lines[0].startswith(
        f"error: interrupted at round {stopped} of 20 ({done} round(s) completed); no model written"
    )
    assert report["status"] == "interrupted" and report["error"] in lines[0]
    assert not (out / "model.pt").exists() and not (out / "meta.json").exists()

    ledger: dict[str, float] = {}
    for entry in PrivacyLedger(f"sqlite:///{out / 'ledger.db'}").entries():
        ledger[entry.platform] = max(ledger.get(entry.platform, 0.0), entry.epsilon)
    assert report["epsilon"] == ledger and set(ledger) == {"platform_1", "platform_2", "platform_3"}
    shown = lines[0].split("ε spent in this run (the platforms' ledgers): ")[1]
    assert shown == ", ".join(f"{name} {eps:.3f}" for name, eps in sorted(ledger.items()))
