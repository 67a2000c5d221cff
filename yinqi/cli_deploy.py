"""`yinqi bank certs …|register|up|down|status|train`: the bank's CA and its side of a secured
Flower deployment (platforms run `yinqi client ...`, `yinqi/cli_platform.py`).

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


certs_app = typer.Typer(
    help="The bank's certificate authority: init once, issue per party and role, revoke, list.", no_args_is_help=True
)
CERTS_HELP = "The bank's CA directory (from `yinqi bank certs init`)."


@certs_app.command("init")
def certs_init(
    out: Path = typer.Option(..., "--out", help="New directory for the CA, the server certificate and crl.pem."),
    host: list[str] = typer.Option(
        [],
        "--host",
        help="Extra host name or IP the bank is reached by (repeatable); 127.0.0.1 and localhost are always in.",
    ),
    days: int = typer.Option(365, help="Validity of the CA and the server certificate in days."),
) -> None:
    """Create the bank's CA and server certificate (refuses to overwrite an existing CA)."""
    from server.security.ca import CertificateAuthority

    ca = CertificateAuthority.create(out, host, days)
    made = ca.server
    console.print(
        f"CA {made.ca}\nserver certificate {made.cert} (key {made.key}), revocation list {made.crl}\n"
        f"give parties {made.ca.name} and the certificate `yinqi bank certs issue` makes for them; "
        "keep ca.key and server.key private"
    )


@certs_app.command("issue")
def certs_issue(
    name: str = typer.Argument(..., help="The party's name (a platform's name, an operator, a monitor, an auditor)."),
    role: str = typer.Option(..., "--role", help="platform, operator, iot-monitor or auditor."),
    certs_dir: Path = typer.Option(..., "--certs", help=CERTS_HELP),
    server_host: list[str] = typer.Option(
        [],
        "--server-host",
        help="Issue a service certificate instead (serverAuth) for a party that serves others, e.g. a platform's "
        "embedding service, valid for this host name or IP (repeatable).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Directory for NAME.crt and NAME.key (default: CERTS/clients, CERTS/servers)."
    ),
    days: int = typer.Option(365, help="Validity in days (never beyond the CA's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Issue a client certificate naming a party and its role, or with --server-host its service
    certificate (never overwrites a file)."""
    from server.security.ca import CertificateAuthority

    issued = CertificateAuthority(certs_dir).issue(name, role, out, days, server_hosts=server_host or None)
    if as_json:
        print(json.dumps(issued.to_dict()))
        return
    what = f"service certificate for {', '.join(issued.hosts)}" if issued.hosts else "client certificate"
    console.print(
        f"issued {issued.role} {what} of {issued.name}: {issued.cert} (key beside it, 0600), "
        f"serial {issued.serial}, valid until {issued.not_after[:10]}"
    )


@certs_app.command("revoke")
def certs_revoke(
    who: str = typer.Argument(..., help="A party's name (all its certificates) or one certificate's serial (hex)."),
    certs_dir: Path = typer.Option(..., "--certs", help=CERTS_HELP),
    reason: str = typer.Option("", help="Why (kept in the CA's index)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Revoke certificates: the bank's services refuse them from the next call on (crl.pem)."""
    from server.security.ca import CertificateAuthority

    revoked = CertificateAuthority(certs_dir).revoke(who, reason)
    if as_json:
        print(json.dumps([r.to_dict() for r in revoked]))
        return
    for r in revoked:
        console.print(f"revoked {r.role} certificate of {r.name}, serial {r.serial}, at {r.revoked_at}")


@certs_app.command("list")
def certs_list(
    certs_dir: Path = typer.Option(..., "--certs", help=CERTS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Every certificate the CA issued to a party, with its role, use, expiry and revocation."""
    from server.security.ca import CertificateAuthority

    issued = CertificateAuthority(certs_dir).issued()
    if as_json:
        print(json.dumps([i.to_dict() for i in issued]))
        return
    table = Table("party", "role", "use", "serial", "valid until", "revoked")
    for i in issued:
        use = f"server: {', '.join(i.hosts)}" if i.usage == "server" else i.usage
        table.add_row(i.name, i.role, use, i.serial, i.not_after[:10], (i.revoked_at or "")[:19])
    console.print(table)


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
    host: str = typer.Option(
        "127.0.0.1", help="Address the platforms dial (the Fleet gate; 0.0.0.0 for other machines)."
    ),
    port: int = typer.Option(9092, help="Port the platforms dial: only Flower's Fleet API is served there."),
    certs_dir: Path | None = typer.Option(
        None, "--certs", help="The bank's CA directory (`yinqi bank certs init`): TLS, node auth, mutual TLS services."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="No TLS, no node authentication (loopback tests only)."),
    services_port: int = typer.Option(
        50061, "--services-port", help="Port of the bank's gRPC services (scoring, credit, alerts)."
    ),
    no_services: bool = typer.Option(False, "--no-services", help="Start only the SuperLink and its Fleet gate."),
    anchor_every: float = typer.Option(
        60.0, "--anchor-every", min=0, help="Seconds between anchoring the records the services queued (0: off)."
    ),
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
            anchor_every=anchor_every,
        )
    if as_json:
        print(json.dumps(state.__dict__))
        return
    mode = "TLS + SuperNode authentication" if state.tls else "INSECURE (no TLS, no node auth)"
    console.print(
        f"platforms dial {state.superlink_address} (Fleet API only, pid {state.gate_pid}); "
        f"SuperLink on {state.control_address} ({mode}), pid {state.superlink_pid}"
    )
    if state.services_address:
        services = "mutual TLS, roles checked" if state.tls else "INSECURE plaintext"
        console.print(f"bank services {state.services_address} ({services}), pid {state.services_pid}")
    if state.extra.get("dashboard"):
        console.print(f"dashboard {state.extra['dashboard']['url']} (operator certificates only)")
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
        f"SuperLink {link['control_address']} (loopback) {'running' if link['running'] else 'NOT running'}"
        f" ({'TLS + node auth' if link['tls'] else 'insecure'})"
    )
    if info["gate"]:
        gate = info["gate"]
        console.print(f"Fleet gate {gate['address']} {'running' if gate['running'] else 'NOT running'}")
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
            on_round=None if as_json else console.print,
        )
    version = None
    if register_model:
        from server.registry import Registry

        version = Registry().register(out).version
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
    from yinqi.tables import readable_table

    table = readable_table(None, ("round", "seconds", "participants", "dropped/refused", "federated AUC"))
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
    bank.add_typer(certs_app, name="certs")
    bank.command("register")(register_key)
    bank.command("up")(up)
    bank.command("down")(down)
    bank.command("status")(status)
    bank.command("train")(train)
