"""`yinqi train` / `yinqi score` through the real command line entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest


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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--strategy", "fedbogus"),
            "Invalid value for '--strategy': 'fedbogus' is not one of 'fedavg', 'fedprox', 'fedavgm', 'fedadam'",
        ),
        (("--model", "xgb"), "Invalid value for '--model': 'xgb' is not one of 'logistic', 'mlp'"),
        (("--backend", "spark"), "Invalid value for '--backend'"),
        (("--epsilon", "-1"), "privacy budget ε=-1.0: expected a finite number above 0 (e.g. 1, 3 or 8)"),
        (("--epsilon", "0"), "privacy budget ε=0.0: expected a finite number above 0"),
        (("--epsilon", "nan"), "privacy budget ε=nan: expected a finite number above 0"),
        (
            ("--epsilon", "inf"),
            "privacy budget ε=inf: expected a finite number above 0 (e.g. 1, 3 or 8); to train without differential privacy say --no-dp",
        ),
        (("--unit-column", " "), "privacy unit column ' ': expected a column name such as merchant_id, or 'row'"),
        (("--lr", "inf"), "lr: Input should be a finite number (got inf)"),
        (("--delta", "2"), "privacy budget δ=2.0: expected a number between 0 and 1 (e.g. 1e-5)"),
        (("--rounds", "0"), "Invalid value for '--rounds': 0 is not in the range x>=1"),
        (("--batch-size", "ten"), "Invalid value for '--batch-size': 'ten' is not a valid integer"),
    ],
    ids=[
        "strategy",
        "model",
        "backend",
        "negative-epsilon",
        "zero-epsilon",
        "nan-epsilon",
        "inf-epsilon",
        "blank-unit",
        "inf-lr",
        "delta",
        "rounds",
        "batch-text",
    ],
)
def test_a_bad_choice_or_number_on_train_is_one_line_with_exit_2(tmp_path, args, expected) -> None:  # type: ignore[no-untyped-def]
    """Issue 9: `--strategy fedbogus`, `--model xgb`, `--epsilon -1` printed tracebacks (rc 1);
    issue 12: `--epsilon inf` was accepted (σ = 10), `0`, `-1`, `nan` printed tracebacks."""
    done = yinqi("train", "--client", str(tmp_path / "a.csv"), "--out", str(tmp_path / "m"), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def cli_model(fl_files, tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.fl.conftest import fast_config
    from yinqi.harness.federated import run_federation

    files, test = fl_files
    out = tmp_path_factory.mktemp("cli-model") / "model"
    run_federation(fast_config(files, test, out, dp=False, secagg=False, rounds=1))
    return out


def test_score_refuses_an_implausible_value_with_its_row(cli_model, fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: `score` turned amount 1e300 into PD 1.0 with exit 0."""
    _, test = fl_files
    data = pd.read_csv(test).head(5)
    data.loc[2, "amount"] = 1e300
    data.to_csv(tmp_path / "in.csv", index=False)
    done = yinqi(
        "score", "--model", str(cli_model), "--data", str(tmp_path / "in.csv"), "--out", str(tmp_path / "s.csv")
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'in.csv'}, column 'amount', row 3: implausible value 1e+300; expected a number within +-1e+15"
    ]
    assert not (tmp_path / "s.csv").exists()


def test_score_clips_a_value_beyond_the_agreed_range_and_says_so(cli_model, fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from federation.model import load_model

    _, test = fl_files
    data = pd.read_csv(test).head(5)
    high = load_model(cli_model).encoder.bounds["amount"][1]
    data.loc[3, "amount"] = high * 1000
    data.to_csv(tmp_path / "in.csv", index=False)
    done = yinqi(
        "score", "--model", str(cli_model), "--data", str(tmp_path / "in.csv"), "--out", str(tmp_path / "s.csv")
    )
    assert done.returncode == 0, done.stderr
    assert (
        "warning: column 'amount': 1 value(s) beyond the range the model was trained on (first at row 4) "
        "were clipped to it" in done.stderr
    )
    scores = pd.read_csv(tmp_path / "s.csv")["default_probability"]
    capped = data.copy()
    capped.loc[3, "amount"] = high
    expected = load_model(cli_model).predict_proba(capped.drop(columns=["merchant_id", "month", "default"]))
    assert scores.tolist() == pytest.approx(expected.tolist(), abs=1e-9)


def test_score_with_a_corrupt_model_file_is_one_line(cli_model, fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: a corrupt model.pt printed a traceback."""
    import shutil

    _, test = fl_files
    broken = tmp_path / "broken"
    shutil.copytree(cli_model, broken)
    (broken / "model.pt").write_bytes(b"garbage")
    done = yinqi("score", "--model", str(broken), "--data", str(test), "--out", str(tmp_path / "s.csv"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{broken / 'model.pt'}: not the weights of the model in meta.json" in lines[0]


def test_score_refuses_a_model_whose_weights_changed_after_it_was_written(cli_model, fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import torch

    _, test = fl_files
    changed = tmp_path / "changed"
    shutil.copytree(cli_model, changed)
    state = torch.load(changed / "model.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 0.01
    torch.save(state, changed / "model.pt")
    done = yinqi("score", "--model", str(changed), "--data", str(test), "--out", str(tmp_path / "s.csv"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "do not match the version hash in meta.json" in lines[0], done.stderr
    assert not (tmp_path / "s.csv").exists()
