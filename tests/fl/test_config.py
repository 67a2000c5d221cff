"""The one run configuration: Flower run_config round trip and per-platform node configs."""

from __future__ import annotations

from pathlib import Path

from server.fl.config import FederationConfig


def test_run_config_is_flat_and_round_trips(tmp_path: Path) -> None:
    cfg = FederationConfig(
        clients=[tmp_path / "a.csv", tmp_path / "b.csv"],
        label="status",
        positive="bad",
        rounds=3,
        epsilon=2.5,
        dp=True,
        secagg=False,
        strategy="fedprox",
        mu=0.05,
        out=tmp_path / "m",
        test=tmp_path / "t.csv",
    )
    run_config = cfg.to_run_config()
    assert all(isinstance(v, (str, int, float, bool)) for v in run_config.values())
    assert all("_" not in k for k in run_config)
    assert run_config["client-files"] == f"{tmp_path / 'a.csv'}|{tmp_path / 'b.csv'}"
    assert run_config["num-clients"] == 2 and run_config["epsilon-budget"] == ""
    again = FederationConfig.from_run_config(run_config)
    assert again == cfg.model_copy(update={"out": cfg.out.resolve(), "test": cfg.test.resolve()})


def test_node_configs_name_each_platform_and_its_ledger(tmp_path: Path) -> None:
    cfg = FederationConfig(
        clients=[tmp_path / "x" / "shop.csv", tmp_path / "y" / "shop.csv"], out=tmp_path / "m", epsilon_budget=10.0
    )
    nodes = cfg.node_configs()
    assert [n["platform-name"] for n in nodes] == ["shop-1", "shop-2"]
    assert nodes[0]["data-path"] == str((tmp_path / "x" / "shop.csv").resolve())
    assert nodes[0]["ledger-db"] == f"sqlite:///{(tmp_path / 'm' / 'ledger.db').resolve()}"
    assert nodes[0]["epsilon-budget"] == 10.0
    assert "epsilon-budget" not in FederationConfig(clients=[tmp_path / "a.csv"], out=tmp_path).node_configs()[0]
