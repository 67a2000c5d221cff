"""The platform refuses what its plan does not allow: unknown, withheld, repeated or spent rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clients.vertical.party import PartyError, PlatformParty
from federation.preprocess import Encoder
from federation.vertical.config import PlatformNodeConfig, VerticalConfig
from federation.vertical.privacy import ReleasePlan


def party(tmp_path: Path, plan: ReleasePlan | None = None) -> PlatformParty:
    cfg = VerticalConfig(bank_data=tmp_path / "bank.csv", session="s" * 32)
    node = PlatformNodeConfig(data_path=tmp_path / "platform.csv")
    encoder = Encoder(numeric={"x": (0.0, 1.0)}, categorical={}, columns=["x"])
    return PlatformParty(cfg, node, encoder, withheld={3}, plan=plan, weights=[], releases=np.zeros(10, np.int32))


def test_unknown_withheld_and_repeated_handles_are_refused(tmp_path: Path) -> None:
    p = party(tmp_path)
    assert p.check(np.array([0, 9])) == [0, 9]
    with pytest.raises(PartyError, match="handle 10 is not in PSI session"):
        p.check(np.array([10]))
    with pytest.raises(PartyError, match="handle -1 is not in PSI session"):
        p.check(np.array([-1]))
    with pytest.raises(PartyError, match="handle 3 is withheld"):
        p.check(np.array([1, 3]))
    with pytest.raises(PartyError, match="same handle twice"):
        p.check(np.array([1, 1]))


def test_a_row_is_released_no_more_often_than_the_plan_allows(tmp_path: Path) -> None:
    p = party(tmp_path, ReleasePlan(4.0, 1e-5, 2, 3.0))
    p.releases[5] = 2
    with pytest.raises(PartyError, match="released 2 times, all the privacy plan allows"):
        p.check(np.array([5]))
    assert p.check(np.array([4])) == [4]


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300, -1e7])
def test_absurd_gradients_from_the_bank_are_refused(tmp_path: Path, bad: float) -> None:
    p = party(tmp_path)
    p.pending = [0, 1]
    p.weights = []
    with pytest.raises(PartyError, match="non-finite or absurd"):
        p.step_with(np.array([[0.1], [bad]], np.float32), np.zeros(0, np.int64))


def test_gradients_must_match_the_pending_batch(tmp_path: Path) -> None:
    p = party(tmp_path)
    p.pending = [0, 1, 2]
    with pytest.raises(PartyError, match="2 gradients for a pending batch of 3"):
        p.step_with(np.zeros((2, 4), np.float32), np.zeros(0, np.int64))
