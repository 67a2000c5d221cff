"""`yinqi data synth` and `yinqi features` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd


def yinqi(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yinqi", *args], capture_output=True, text=True, cwd=cwd)


def test_synth_then_features_with_mapping(tmp_path):
    done = yinqi(
        "data",
        "synth",
        "--platforms",
        "2",
        "--merchants",
        "10",
        "--months",
        "3",
        "--seed",
        "4",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    raw = pd.read_csv(summary["platform_files"][0]).rename(columns={"merchant_id": "shop", "amount": "gmv"})
    raw.to_csv(tmp_path / "theirs.csv", index=False)
    (tmp_path / "mapping.toml").write_text('[columns]\nmerchant_id = "shop"\namount = "gmv"\n')

    done = yinqi(
        "features",
        str(tmp_path / "theirs.csv"),
        "--mapping",
        str(tmp_path / "mapping.toml"),
        "--out",
        str(tmp_path / "f.parquet"),
    )

    assert done.returncode == 0, done.stderr
    features = pd.read_parquet(tmp_path / "f.parquet")
    assert len(features) == summary["merchants"][0] * 3
    assert features["growth"].notna().all()


def test_user_mistake_is_one_line_with_exit_code_2(tmp_path):
    (tmp_path / "raw.csv").write_text(
        "merchant_id,date,amount,rating,inventory_turnover,default\nA,2026-01-01,ten,5,1,0\n"
    )
    done = yinqi("features", str(tmp_path / "raw.csv"), "--out", str(tmp_path / "f.csv"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'raw.csv'}, column 'amount', row 1: expected a number, found 'ten'"
    ]
    assert "Traceback" not in done.stderr
