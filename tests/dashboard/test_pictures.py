"""Pictures and live progress from the CLI: `yinqi train` prints each round as it finishes and
writes ROC/KS and per-round PNGs next to the model; the PNG writers draw what they are given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from federation import plots
from federation.progress import RoundFollower, round_line
from federation.waiting import wait_until


def png(path: Path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 20  # drawn, not a blank canvas
    return image


def test_roc_ks_matches_the_metrics_and_separates_good_from_bad(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(300), np.ones(100)]
    scores = np.r_[rng.beta(2, 5, 300), rng.beta(5, 2, 100)]
    png(plots.roc_ks_png(y, scores, tmp_path / "roc.png"))
    with pytest.raises(ValueError):
        plots.roc_ks_png(np.zeros(5), np.zeros(4), tmp_path / "bad.png")  # one label per score
    assert not (tmp_path / "bad.png").exists()  # nothing half-written


def test_map_and_tradeoff_pictures(tmp_path: Path) -> None:
    devices = [
        {"device_id": "exc-1", "lat": 35.0, "lon": 113.0, "alert": "raised"},
        {"device_id": "exc-2", "lat": 31.0, "lon": 119.0},
    ]
    png(plots.device_map_png(devices, [30, 40, 110, 120], [], tmp_path / "map.png"))
    png(plots.tradeoff_png([("ε=1", 1.0, 0.7), ("ε=8", 8.0, 0.8)], tmp_path / "tradeoff.png", baseline=0.82))


def test_the_follower_passes_each_finished_round_once_in_order(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    seen: list[int] = []
    lock = threading.Lock()

    def on_round(r, rep) -> None:  # type: ignore[no-untyped-def]
        with lock:
            seen.append(r["round"])

    def write(rounds: list[dict]) -> None:
        from federation import files

        files.write_text(report, json.dumps({"rounds": rounds, "settings": {"rounds": 3}}))

    with RoundFollower(report, on_round, interval=0.02):
        write([{"round": 1, "seconds": 0.0}])  # started, not finished
        write([{"round": 1, "seconds": 1.5, "federated_auc": 0.7}])
        wait_until(lambda: seen == [1], timeout=10, what="round 1")
        write([{"round": 1, "seconds": 1.5}, {"round": 2, "seconds": 1.0}, {"round": 3, "seconds": 0.0}])
        wait_until(lambda: seen == [1, 2], timeout=10, what="round 2")
        write([{"round": 1, "seconds": 1.5}, {"round": 2, "seconds": 1.0}, {"round": 3, "seconds": 2.0}])
    assert seen == [1, 2, 3]  # the last one read on stop, none twice
    line = round_line(
        {
            "round": 2,
            "seconds": 1.0,
            "federated_auc": 0.75,
            "refused": {"p3": "budget"},
            "clients": [{"platform": "p1", "epsilon": 1.234}],
        },
        {"settings": {"rounds": 3}},
    )
    assert line.startswith("round 2/3: AUC 0.7500") and "refused p3" in line and "ε p1 1.23" in line


def test_an_old_report_is_not_progress(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"rounds": [{"round": 1, "seconds": 3.0}]}))
    os.utime(report, (1, 1))
    follower = RoundFollower(report, lambda r, rep: pytest.fail("an old run's round"))
    assert follower.poll() == 0


@pytest.mark.slow
def test_train_prints_rounds_as_they_finish_and_writes_pictures(tmp_path: Path) -> None:
    from federation.synth import make_feature_files

    files, test = make_feature_files(tmp_path / "data", platforms=3, merchants=60, months=6, seed=3)
    model = tmp_path / "model"
    clients = [arg for f in files for arg in ("--client", str(f))]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("YINQI_")},
        "COLUMNS": "60",
        "YINQI_DATA_DIR": str(tmp_path / "d"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "yinqi",
            "train",
            *clients,
            "--rounds",
            "2",
            "--seed",
            "1",
            "--reproducible-noise",
            "--test",
            str(test),
            "--out",
            str(model),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(("round 1/2:", "round 2/2:"))]
    assert len(starts) == 2 and starts == sorted(starts), done.stdout
    assert "ε platform_1" in "".join(lines[starts[0] : starts[0] + 3])  # DP: ε spent, per platform
    for name in ("rounds.png", "roc_ks.png"):
        assert f"picture {model / name}" in done.stdout.replace("\n", "")
        png(model / name)


def test_iot_alerts_can_draw_the_map(tmp_path: Path) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from iot.store import IotStore
    from yinqi import demo_iot
    from yinqi.cli import app

    demo_iot.run(tmp_path / "iot", Console(file=open(os.devnull, "w")))  # noqa: SIM115
    db = f"sqlite:///{tmp_path / 'iot' / 'iot.db'}"
    out = tmp_path / "map.png"
    result = CliRunner().invoke(app, ["iot", "alerts", "--db", db, "--map", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert len([line for line in result.stdout.splitlines() if line.startswith("{")]) == len(IotStore(db).alerts())
    png(out)
