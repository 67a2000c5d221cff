"""`yinqi train` / `yinqi score` through the real command line entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd


def yinqi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yinqi", *args], capture_output=True, text=True, timeout=300)


def test_train_then_score_keeps_row_order_and_ids(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    model = tmp_path / "model"
    clients = [arg for f in files for arg in ("--client", str(f))]
    done = yinqi(
        "train", *clients, "--rounds", "1", "--no-dp", "--no-secagg", "--test", str(test), "--out", str(model), "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["participants"] == ["platform_1", "platform_2", "platform_3"]

    data = pd.read_csv(test).sample(frac=1.0, random_state=7).reset_index(drop=True)
    data.insert(0, "id", [f"row-{i}" for i in range(len(data))])
    data_path = tmp_path / "to_score.csv"
    data.to_csv(data_path, index=False)
    scores_path = tmp_path / "scores.csv"
    done = yinqi("score", "--model", str(model), "--data", str(data_path), "--out", str(scores_path))
    assert done.returncode == 0, done.stderr
    scores = pd.read_csv(scores_path)
    assert list(scores["id"]) == list(data["id"])
    assert list(scores["merchant_id"]) == list(data["merchant_id"])
    assert scores["default_probability"].between(0, 1).all() and len(scores) == len(data)

    from federation.model import load_model

    expected = load_model(model).predict_proba(data.drop(columns=["id", "merchant_id", "month", "default"]))
    assert (abs(scores["default_probability"].to_numpy() - expected) < 1e-9).all()


def test_a_bad_model_dir_is_one_line_and_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "x.csv"
    data.write_text("amount\n1\n")
    done = yinqi("score", "--model", str(tmp_path / "nope"), "--data", str(data), "--out", str(tmp_path / "s.csv"))
    assert done.returncode == 2
    assert "error:" in done.stderr and "not a model directory" in done.stderr and "Traceback" not in done.stderr


def test_central_yardstick_trains_torch_and_random_forest(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    clients = [arg for f in files for arg in ("--client", str(f))]
    done = yinqi(
        "train", "--central", *clients, "--rounds", "2", "--test", str(test), "--out", str(tmp_path / "c"), "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["torch_auc"] > 0.6 and result["rf_auc"] > 0.6
    assert (tmp_path / "c" / "model.pt").is_file()
