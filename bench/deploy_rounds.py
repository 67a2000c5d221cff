"""Per-round wall time of the same federated run on simulation, loopback and TLS + node auth.

`measure_round_times(mode, clients, rounds, secagg)` runs the real ServerApp/ClientApp (DP-SGD
on small synthetic data) and returns the per-round seconds from the run report; `bench/fl.py`
and `bench/bank.py` import it. `python bench/deploy_rounds.py [--quick] [--baseline]` prints one
table (plain vs SecAgg+ in each mode, ratios against simulation in the same run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("simulation", "loopback", "tls", "bank-up", "loopback-stock")


def _config(workdir: Path, clients: int, rounds: int, secagg: bool, merchants: int):  # type: ignore[no-untyped-def]
    from federation.synth import make_feature_files
    from server.fl.config import FederationConfig

    files, test = make_feature_files(workdir / "data", platforms=clients, merchants=merchants, months=6, seed=7)
    return FederationConfig(
        clients=files,
        rounds=rounds,
        epsilon=8.0,
        dp=True,
        secagg=secagg,
        out=workdir / "model",
        test=test,
        min_clients=clients,
    )


def measure_round_times(
    mode: str, clients: int = 3, rounds: int = 2, secagg: bool = True, merchants: int = 150
) -> dict[str, Any]:
    """Run one federation in `mode` and time it.

    mode: "simulation" (in-process Simulation Engine), "loopback" (SuperLink + SuperNodes as
    processes on 127.0.0.1 with yinqi's speed-ups), "tls" (the same with TLS and SuperNode
    authentication), "bank-up" (TLS + node auth as `yinqi bank up` runs it: the SuperLink on
    loopback behind the Fleet gate, platforms dialling the gate, `bank train` submitting the run)
    or "loopback-stock" (Flower's defaults: a new `flwr-clientapp` per message, 3 s polls) as the
    baseline.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    with tempfile.TemporaryDirectory(prefix=f"yinqi-bench-{mode}-") as tmp:
        workdir = Path(tmp)
        config = _config(workdir, clients, rounds, secagg, merchants)
        started = time.perf_counter()
        extra: dict[str, Any] = {}
        if mode == "simulation":
            from yinqi.harness.federated import run_federation

            report = run_federation(config)
        elif mode == "bank-up":
            report = _through_the_gate(workdir, config, clients, rounds, secagg, extra)
        else:
            from yinqi.harness.loopback import run_deployed

            kwargs: dict[str, Any] = {}
            if mode == "tls":
                from clients.node.keys import make_node_key
                from server.deploy.superlink import TlsPaths
                from server.security.ca import make_certs

                certs = make_certs(workdir / "certs")
                kwargs["tls"] = TlsPaths(certs.ca, certs.cert, certs.key)
                kwargs["keys"] = [make_node_key(workdir / "keys" / f"node{i}")[0] for i in range(clients)]
            if mode == "loopback-stock":
                kwargs.update(warm=False, node_poll=None, fast_grid=False)
            report = run_deployed(config, **kwargs)
        wall = time.perf_counter() - started
    seconds = list(report.round_seconds)
    return {
        "mode": mode,
        "clients": clients,
        "rounds": rounds,
        "secagg": secagg,
        "round_seconds": seconds,
        "mean_round_s": statistics.fmean(seconds) if seconds else float("nan"),
        "last_round_s": seconds[-1] if seconds else float("nan"),
        "wall_s": wall,
        "startup": report.settings.get("deployment", {}),
        "aggregated": all(r.aggregated for r in report.rounds),
        **extra,
    }


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    import os

    if not pid:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _through_the_gate(
    workdir: Path, config: Any, clients: int, rounds: int, secagg: bool, extra: dict[str, Any]
) -> Any:
    """One run as `yinqi bank up` + `yinqi client up` + `yinqi bank train` do it (TLS, node auth,
    the SuperLink's state in its SQLite file); the gate's and the SuperLink's CPU go to `extra`."""
    import contextlib

    from clients.node.keys import make_node_key
    from clients.node.platform import PlatformNode, start, wait_connected
    from federation.waiting import free_port
    from server.deploy import bank
    from server.security.ca import make_certs

    certs = make_certs(workdir / "certs")
    state = bank.up(port=free_port(), certs=certs.ca.parent, services_port=None, data_dir=workdir / "bank")
    try:
        with contextlib.ExitStack() as nodes:
            for i, data in enumerate(config.clients):
                key, pub = make_node_key(workdir / "keys" / f"node{i}")
                name = f"platform_{i + 1}"
                bank.register(pub, name, data_dir=workdir / "bank")
                node = PlatformNode(bank=state.superlink_address, data=Path(data), name=name, key=key, ca=certs.ca)
                supervisor = nodes.enter_context(start(node, workdir / name))
                wait_connected(supervisor, node)
            kwargs = dict(
                rounds=rounds, epsilon=8.0, dp=True, secagg=secagg, test=config.test, out=workdir / "model-gate"
            )
            gate, link = _cpu_seconds(state.gate_pid), _cpu_seconds(state.superlink_pid)
            report, _run_id = bank.train(kwargs, data_dir=workdir / "bank", min_platforms=clients, wait=60)
            extra["gate_cpu_s"] = _cpu_seconds(state.gate_pid) - gate
            extra["superlink_cpu_s"] = _cpu_seconds(state.superlink_pid) - link
            return report
    finally:
        bank.down(workdir / "bank")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SecAgg+ only, 2 rounds")
    parser.add_argument("--baseline", action="store_true", help="also Flower's stock loopback (slow: ~2 min)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    modes = ["simulation", "loopback", "tls", "bank-up"] + (["loopback-stock"] if args.baseline else [])
    variants = [True] if args.quick else [False, True]
    rows = []
    console = Console(width=120)
    for secagg in variants:
        for mode in modes:
            with console.status(f"{mode}, {'SecAgg+' if secagg else 'plain'}"):
                rows.append(measure_round_times(mode, args.clients, args.rounds, secagg))
    base = {r["secagg"]: r["mean_round_s"] for r in rows if r["mode"] == "simulation"}
    plain = {r["mode"]: r["mean_round_s"] for r in rows if not r["secagg"]}
    table = Table(title=f"Round wall time, {args.clients} platforms, {args.rounds} rounds, DP-SGD (same run)")
    for col in ("mode", "aggregation", "per round (s)", "mean (s)", "× simulation", "SecAgg+/plain", "wall (s)"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        ratio = r["mean_round_s"] / base[r["secagg"]] if base.get(r["secagg"]) else float("nan")
        sp = f"{r['mean_round_s'] / plain[r['mode']]:.2f}×" if r["secagg"] and plain.get(r["mode"]) else ""
        table.add_row(
            r["mode"],
            "SecAgg+" if r["secagg"] else "plain",
            " / ".join(f"{s:.1f}" for s in r["round_seconds"]),
            f"{r['mean_round_s']:.2f}",
            f"{ratio:.1f}×",
            sp,
            f"{r['wall_s']:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
