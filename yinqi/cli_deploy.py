"""`yinqi bank certs|register|up|down|status|train`: the bank's side of a secured Flower
deployment (platforms run `yinqi client ...`, `yinqi/cli_platform.py`).

Heavy imports (flwr, torch, cryptography) stay inside the commands so `yinqi --help` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

DATA_DIR_HELP = "The bank's state directory (default: <yinqi data dir>/bank)."


def certs(
    out: Path = typer.Option(..., "--out", help="Directory for ca.crt, ca.key, server.pem, server.key."),
    host: list[str] = typer.Option(
        [],
        "--host",
        help="Extra host name or IP the bank is reached by (repeatable); 127.0.0.1 and localhost are always in.",
    ),
    days: int = typer.Option(365, help="Validity of the certificates in days."),
) -> None:
    """Create a CA and the SuperLink's server certificate for a test federation."""
    from server.deploy.tls import make_certs

    made = make_certs(out, host, days)
    console.print(
        f"CA {made.ca}\nserver certificate {made.cert} (key {made.key})\n"
        f"give platforms {made.ca.name}; keep ca.key and server.key private"
    )


def register_key(
    public_key: Path = typer.Argument(..., help="The platform's public key (OpenSSH, EC P-384), e.g. node.pub."),
    name: str | None = typer.Option(None, "--name", help="Platform name shown in status and reports."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Register a platform's node key with the running SuperLink (only registered keys connect)."""
    from server.deploy.bank import register

    node_id = register(public_key, name, data_dir)
    if as_json:
        print(json.dumps({"node_id": node_id, "name": name}))
    else:
        console.print(f"registered {public_key} as node {node_id}{' (' + name + ')' if name else ''}")


def up(
    host: str = typer.Option("127.0.0.1", help="Address the SuperLink listens on (0.0.0.0 for other machines)."),
    port: int = typer.Option(9092, help="SuperLink port (Fleet, Control and Runtime APIs share it)."),
    certs_dir: Path | None = typer.Option(
        None, "--certs", help="Directory from `yinqi bank certs`: serve TLS and require registered node keys."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="No TLS, no node authentication (loopback tests only)."),
    services_port: int = typer.Option(
        50061, "--services-port", help="Port of the bank's gRPC services (scoring, credit, alerts)."
    ),
    no_services: bool = typer.Option(False, "--no-services", help="Start only the SuperLink."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the state as JSON."),
) -> None:
    """Start the bank: a Flower SuperLink (TLS + node auth) and the bank's gRPC services, detached."""
    from server.deploy.bank import up as bank_up

    with console.status("starting the SuperLink"):
        state = bank_up(
            host=host,
            port=port,
            certs=certs_dir,
            insecure=insecure,
            services_port=None if no_services else services_port,
            data_dir=data_dir,
        )
    if as_json:
        print(json.dumps(state.__dict__))
        return
    mode = "TLS + SuperNode authentication" if state.tls else "INSECURE (no TLS, no node auth)"
    console.print(f"SuperLink {state.superlink_address} ({mode}), pid {state.superlink_pid}")
    if state.services_address:
        console.print(f"bank services {state.services_address}, pid {state.services_pid}")
    console.print(f"logs {state.log_dir}; stop with `yinqi bank down`")


def down(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
) -> None:
    """Stop the bank's SuperLink and services started by `yinqi bank up`."""
    from server.deploy.bank import down as bank_down

    stopped = bank_down(data_dir)
    console.print("stopped " + (", ".join(stopped) if stopped else "nothing (already stopped)"))


def status(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show the bank's processes, the platforms' nodes (online/offline) and recent refusals."""
    from server.deploy.bank import status as bank_status

    info = bank_status(data_dir)
    if as_json:
        print(json.dumps(info, default=str))
        return
    link = info["superlink"]
    console.print(
        f"SuperLink {link['address']} {'running' if link['running'] else 'NOT running'}"
        f" ({'TLS + node auth' if link['tls'] else 'insecure'})"
    )
    if info["services"]:
        svc = info["services"]
        console.print(f"bank services {svc['address']} {'running' if svc['running'] else 'NOT running'}")
    table = Table("node id", "name", "status")
    for node in info["nodes"]:
        table.add_row(str(node["node_id"]), node["name"], node["status"])
    console.print(table)
    for rejection in info["rejected"]:
        from rich.markup import escape

        console.print(f"[yellow]refused[/] {rejection['kind']}: {escape(rejection['line'])}", highlight=False)


def train(
    rounds: int = typer.Option(5, help="Federated rounds."),
    epsilon: float = typer.Option(8.0, help="Each platform's ε budget for this run (DP-SGD)."),
    delta: float = typer.Option(1e-5, help="DP δ."),
    no_dp: bool = typer.Option(False, "--no-dp", help="Train without differential privacy."),
    no_secagg: bool = typer.Option(False, "--no-secagg", help="Plain FedAvg instead of SecAgg+."),
    label: str = typer.Option("default", help="Label column in the platforms' files."),
    positive: str | None = typer.Option(None, help="Label value that means default (when not 0/1)."),
    strategy: str = typer.Option("fedavg", help="fedavg or fedprox."),
    test: Path | None = typer.Option(None, help="The bank's own held-out feature file for test AUC/KS."),
    out: Path = typer.Option(Path("out/model"), help="Model directory (model, encoder, report.json)."),
    min_platforms: int = typer.Option(
        2,
        "--min-platforms",
        help="Wait until this many platforms are online; every round then needs updates from at least this many.",
    ),
    wait: float = typer.Option(60.0, help="Seconds to wait for platforms to come online."),
    register_model: bool = typer.Option(
        True, "--register/--no-register", help="Store the model in the bank's registry."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report summary as JSON."),
) -> None:
    """Launch a federated run on the platforms connected to the running bank; write model + report."""
    from server.deploy.bank import train as bank_train

    kwargs: dict[str, Any] = dict(
        rounds=rounds,
        epsilon=epsilon,
        delta=delta,
        dp=not no_dp,
        secagg=not no_secagg,
        label=label,
        positive=positive,
        strategy=strategy,
        test=test,
        out=out,
    )
    with console.status("federated training on the connected platforms") as spinner:
        report, run_id = bank_train(
            kwargs,
            data_dir=data_dir,
            min_platforms=min_platforms,
            wait=wait,
            progress=lambda text: spinner.update(text),
        )
    version = None
    if register_model:
        from server.registry import register_model

        version = register_model(out).version
    summary = {
        "run_id": run_id,
        "model_dir": str(out),
        "participants": report.participants,
        "refused": report.refused,
        "epsilon": report.epsilon,
        "final": report.final,
        "round_seconds": report.round_seconds,
        "dropped": sorted({d for r in report.rounds for d in r.dropped}),
        "version": version,
    }
    if as_json:
        print(json.dumps(summary, default=str))
        return
    table = Table("round", "seconds", "participants", "dropped/refused", "federated AUC")
    for r in report.rounds:
        table.add_row(
            str(r.round),
            f"{r.seconds:.1f}",
            ", ".join(r.participants),
            ", ".join(r.dropped + [f"{k}: {v}" for k, v in r.refused.items()]),
            "" if r.federated_auc is None else f"{r.federated_auc:.3f}",
        )
    console.print(table)
    for name, eps in report.epsilon.items():
        console.print(f"ε spent by {name}: {eps:.3f}")
    console.print(f"model {out}" + (f", registered as {version}" if version else ""))


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    bank = groups["bank"]
    bank.command("certs")(certs)
    bank.command("register")(register_key)
    bank.command("up")(up)
    bank.command("down")(down)
    bank.command("status")(status)
    bank.command("train")(train)
