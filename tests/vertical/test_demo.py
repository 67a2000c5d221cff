"""The demo's vertical part: PSI over mutual TLS, training, registration, a scored and a refused merchant."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from yinqi import demo_vertical


def test_demo_part_runs_psi_training_and_scores_only_a_consented_merchant(tmp_path: Path) -> None:
    out = io.StringIO()
    demo_vertical.run(tmp_path / "vertical", Console(file=out, width=200))
    text = out.getvalue()
    assert "1050 shared merchants" in text  # 70 % of 1500
    assert "registered v1:" in text
    assert "(consented): PD 0." in text
    assert "refused by the platform: merchant" in text and "has no consent in force" in text
