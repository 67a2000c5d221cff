"""`yinqi data synth` and `yinqi features` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest


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


RAW_HEADER = "merchant_id,date,amount,rating,inventory_turnover,default\n"


def test_an_amount_beyond_any_plausible_size_is_refused_not_written_as_inf(tmp_path):
    """Issue 11: `features` wrote `inf` for 1e308 (two orders summed past the float range), exit 0."""
    raw = tmp_path / "raw.csv"
    raw.write_text(RAW_HEADER + "A,2026-01-01,1e308,5,1,0\nA,2026-01-09,1e308,4,1,0\n")
    done = yinqi("features", str(raw), "--out", str(tmp_path / "f.csv"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {raw}, column 'amount', row 1: implausible value 1e+308; expected a number within +-1e+15"
    ]
    assert not (tmp_path / "f.csv").exists()


def test_values_are_printed_as_plain_numbers(tmp_path):
    """Issue 11: messages printed `np.float64(inf)`."""
    raw = tmp_path / "raw.csv"
    raw.write_text(RAW_HEADER + "A,2026-01-01,10,5,inf,0\n")
    done = yinqi("features", str(raw), "--out", str(tmp_path / "f.csv"))
    assert done.returncode == 2
    assert "infinite value inf;" in done.stderr and "np." not in done.stderr


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (b'default = "x"\n', "default must be a table ([default] positive = VALUE), not 'x'"),
        (
            b'[columns]\namount = "gmv"\n[default]\npositive = "Y"\nnegative = "N"\n',
            "[default] has unknown key 'negative'",
        ),
        (b'[colums]\namount = "gmv"\n', "unknown table [colums]"),
        (b'[columns]\namount = "x"\nrating = "x"\n', "[columns] maps ['amount', 'rating'] all to 'x'"),
        ('[columns]\namount = "金额"\n'.encode("gb18030"), "not UTF-8 text (byte 20); save the mapping as UTF-8"),
    ],
    ids=["default-not-a-table", "unknown-key", "misspelled-table", "two-to-one", "not-utf8"],
)
def test_a_bad_mapping_is_one_line_not_a_traceback(tmp_path, mapping, expected):
    """Issue 11: `default = "x"` raised AttributeError, a non-UTF-8 mapping UnicodeDecodeError."""
    raw = tmp_path / "raw.csv"
    raw.write_text(RAW_HEADER + "A,2026-01-01,10,5,1,0\n")
    (tmp_path / "mapping.toml").write_bytes(mapping)
    done = yinqi("features", str(raw), "--mapping", str(tmp_path / "mapping.toml"), "--out", str(tmp_path / "f.csv"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'mapping.toml'}: {expected}"), lines


def test_features_killed_mid_write_leave_nothing_that_score_could_take_for_whole(tmp_path):
    """Issue 11: `features` killed mid-write left a truncated file that `score` accepted."""
    import os
    import signal
    import time

    import numpy as np

    months = 12
    merchants = 10_000
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "merchant_id": np.repeat([f"M{i:06d}" for i in range(merchants)], months),
            "date": np.tile([f"2025-{k:02d}-05" for k in range(1, months + 1)], merchants),
            "amount": rng.gamma(2, 50, merchants * months).round(2),
            "rating": rng.integers(1, 6, merchants * months),
            "inventory_turnover": rng.gamma(2, 2, merchants * months).round(3),
            "default": (rng.random(merchants * months) < 0.05).astype(int),
        }
    ).to_csv(tmp_path / "raw.csv", index=False)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "yinqi", "features", str(tmp_path / "raw.csv"), "--out", str(out / "f.csv")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    writing = False
    while time.monotonic() < deadline and proc.poll() is None:
        if any(name.startswith(".f.csv.partial-") for name in os.listdir(out)):
            writing = True
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.wait(timeout=60)
    assert writing, "the features command finished before it could be killed mid-write"
    assert not (out / "f.csv").exists()
    done = yinqi("score", "--model", str(tmp_path / "m"), "--data", str(out / "f.csv"), "--out", str(tmp_path / "s"))
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("data", "synth", "--platforms", "0"),
        ("data", "synth", "--merchants", "many"),
        ("data", "synth", "--months", "-3"),
        ("features", "raw.csv"),
    ],
    ids=["zero-platforms", "text-for-a-number", "negative-months", "missing-out"],
)
def test_bad_numbers_and_options_on_data_commands_are_one_line_with_exit_2(tmp_path, args):
    done = yinqi(*args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
