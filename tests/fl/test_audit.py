"""`yinqi audit privacy`: membership inference against a released model (issue 12).

The attack must see what a model without DP gives away: merchants whose labels are pure noise
can only be fitted by memorising them, so a model that fits them tells members from non-members.
The same model retrained with DP at ε=1 must not. Bad inputs are one line and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clients.privacy_audit import dp_tpr_bound, evaluate_attack, lira_scores


def _merchants(path: Path, prefix: str, count: int, rng: np.random.Generator, months: int = 4) -> Path:
    """`count` merchants of `months` rows of noise features, each with one random label."""
    rows = []
    for m in range(count):
        label = int(rng.random() < 0.5)
        for t in range(months):
            features = {f"f{j}": float(rng.normal()) for j in range(6)}
            rows.append({"merchant_id": f"{prefix}{m:03d}", "month": f"2025-{t + 1:02d}", **features, "default": label})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def overfit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    """A no-DP MLP trained by two platforms long enough to memorise their merchants' labels."""
    from server.fl.config import FederationConfig
    from yinqi.harness.federated import run_federation

    root = tmp_path_factory.mktemp("audit")
    rng = np.random.default_rng(0)
    members = [_merchants(root / f"platform_{i}.csv", f"P{i}M", 30, rng) for i in (1, 2)]
    non_members = _merchants(root / "others.csv", "NM", 60, rng)
    config = FederationConfig(
        clients=members,
        out=root / "model",
        rounds=2,
        seed=1,
        dp=False,
        secagg=False,
        architecture="mlp",
        hidden=64,
        local_epochs=60,
        lr=0.3,
    )
    run_federation(config)
    return root / "model", members, non_members


def _yinqi(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """Run the real `yinqi` entry point in this process: (exit code, stdout, stderr)."""
    from yinqi.cli import main

    monkeypatch.setattr(sys, "argv", ["yinqi", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_the_audit_tells_members_of_an_overfit_model_and_dp_hides_them(  # type: ignore[no-untyped-def]
    overfit, tmp_path, capsys, monkeypatch
) -> None:
    model, members, non_members = overfit
    plot = tmp_path / "roc.png"
    args = ["audit", "privacy", str(model), "--non-members", str(non_members), "--compare", "1"]
    args += [arg for m in members for arg in ("--members", str(m))]
    code, out, err = _yinqi(capsys, monkeypatch, *args, "--shadows", "4", "--plot", str(plot), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["unit"] == "merchant_id" and report["members"] == 60 and report["non_members"] == 60
    released, private = report["levels"]
    assert released["source"] == "released model" and released["epsilon"] is None  # trained without DP
    # Clearly better than chance (0.5 ± 0.05 by chance with 60 + 60 merchants).
    assert released["loss_attack"]["auc"] >= 0.7, released
    assert released["lira"]["auc"] >= 0.6, released
    # The same training at ε=1: the attacks are back near chance, and under the DP bound.
    assert private["epsilon"] == 1.0 and private["source"] == "retrained on the members"
    assert max(private["loss_attack"]["auc"], private["lira"]["auc"]) <= 0.65, private
    assert (
        private["lira"]["auc"] < released["lira"]["auc"]
        and private["loss_attack"]["auc"] < released["loss_attack"]["auc"]
    )
    assert private["lira"]["tpr_at_1pct_fpr"] <= private["dp_tpr_bound_at_1pct_fpr"]
    assert report["plot"] == str(plot) and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no model", "not a model directory"),
        ("missing file", "file not found"),
        ("same file both ways", "is given as --members and as --non-members"),
        ("merchant in both", "a merchant is a member or a non-member, not both"),
        ("no label", "label column not found"),
        ("another schema", "column not known to the model"),
        ("nan epsilon", "expected a positive number or 'inf'"),
        ("negative epsilon", "expected a positive number or 'inf'"),
        ("odd shadows", "expected an even number of shadow models"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(  # type: ignore[no-untyped-def]
    overfit, tmp_path, capsys, monkeypatch, case, expected
) -> None:
    model, members, non_members = overfit
    frame = pd.read_csv(non_members)
    args = {"model": str(model), "members": str(members[0]), "non": str(non_members), "extra": []}
    if case == "no model":
        args["model"] = str(tmp_path / "nope")
    elif case == "missing file":
        args["members"] = str(tmp_path / "absent.csv")
    elif case == "same file both ways":
        args["non"] = str(members[0])
    elif case == "merchant in both":
        mixed = pd.concat([frame, pd.read_csv(members[0]).head(4)])
        mixed.to_csv(tmp_path / "mixed.csv", index=False)
        args["non"] = str(tmp_path / "mixed.csv")
    elif case == "no label":
        frame.drop(columns=["default"]).to_csv(tmp_path / "unlabeled.csv", index=False)
        args["non"] = str(tmp_path / "unlabeled.csv")
    elif case == "another schema":
        frame.assign(turnover=1.0).to_csv(tmp_path / "other.csv", index=False)
        args["non"] = str(tmp_path / "other.csv")
    elif case == "nan epsilon":
        args["extra"] = ["--compare", "nan"]
    elif case == "negative epsilon":
        args["extra"] = ["--compare", "-1"]
    elif case == "odd shadows":
        args["extra"] = ["--shadows", "3"]
    code, _out, err = _yinqi(
        capsys,
        monkeypatch,
        "audit",
        "privacy",
        str(args["model"]),
        "--members",
        str(args["members"]),
        "--non-members",
        str(args["non"]),
        "--plot",
        str(tmp_path / "roc.png"),
        *args["extra"],
    )
    assert code == 2, err
    assert err.startswith("error:") and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "roc.png").exists()  # nothing written for a refused audit


def test_attack_scoring_and_the_dp_bound() -> None:
    member = np.array([True, True, False, False])
    perfect = evaluate_attack(member, np.array([2.0, 1.0, 0.0, -1.0]))
    assert perfect.auc == 1.0 and perfect.tpr_at_1pct_fpr == 1.0
    backwards = evaluate_attack(member, np.array([-2.0, -1.0, 0.0, 1.0]))
    assert backwards.auc == 0.0 and backwards.tpr_at_1pct_fpr == 0.0
    # LiRA: a unit whose target statistic sits where its IN shadows were scores above one that
    # sits where its OUT shadows were.
    shadows = np.array([[3.0, 3.0], [0.0, 0.0], [3.1, 3.1], [0.1, 0.1]])
    inside = np.array([[True, True], [False, False], [True, True], [False, False]])
    scores = lira_scores(np.array([3.0, 0.0]), shadows, inside)
    assert scores[0] > 0 > scores[1]
    assert dp_tpr_bound(1.0, 1e-5) == pytest.approx(np.e * 0.01 + 1e-5)
    assert dp_tpr_bound(8.0, 1e-5) == 1.0 and dp_tpr_bound(float("inf"), 1e-5) == 1.0


def test_a_central_yardstick_is_audited_as_a_model_without_dp(overfit, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Its report carries the run's DP settings, but it trained without DP: audited at ε = ∞."""
    from clients.privacy_audit import audit_model
    from server.fl.config import FederationConfig
    from yinqi.harness.central import train_central

    _model, members, non_members = overfit
    train_central(FederationConfig(clients=members, out=tmp_path / "central", rounds=1), random_forest=False)
    audit = audit_model(tmp_path / "central", members, [non_members], compare=[], shadows=2)
    assert [level.epsilon for level in audit.levels] == [float("inf")]
    assert audit.recipe["dp"] is False
