"""`yinqi train` and `yinqi score`: federated (or central) credit-model training and scoring."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # pragma: no cover
    from server.fl.report import Report

console = Console()


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.command("train")(train)
    root.command("score")(score)
    groups["client"].command("ledger")(ledger)


class Strategy(StrEnum):
    fedavg = "fedavg"
    fedprox = "fedprox"
    fedavgm = "fedavgm"
    fedadam = "fedadam"


class Architecture(StrEnum):
    logistic = "logistic"
    mlp = "mlp"


class Backend(StrEnum):
    inprocess = "inprocess"
    ray = "ray"


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


def train(
    client: list[Path] = typer.Option(
        ..., "--client", help="One platform's private feature file (CSV/Parquet); repeat per platform."
    ),
    label: str = typer.Option("default", "--label", help="Label column (1/positive = default)."),
    positive: str = typer.Option(
        None, "--positive", help="Label value meaning 'default' (e.g. bad); omit when the label is 0/1."
    ),
    rounds: int = typer.Option(10, "--rounds", min=1, help="Federated rounds."),
    epsilon: float = typer.Option(
        8.0, "--epsilon", help="Each platform's total DP budget ε for the whole run, per privacy unit (finite, > 0)."
    ),
    delta: float = typer.Option(1e-5, "--delta", help="DP δ for the whole run."),
    no_dp: bool = typer.Option(False, "--no-dp", help="Train without differential privacy."),
    no_secagg: bool = typer.Option(False, "--no-secagg", help="Aggregate in the clear instead of with SecAgg+."),
    unit_column: str = typer.Option(
        "merchant_id",
        "--unit-column",
        help="The privacy unit: the id column whose rows are sampled and clipped together; 'row' opts into row-level DP.",
    ),
    strategy: Strategy = typer.Option(Strategy.fedavg, "--strategy", help="Aggregation strategy (server step)."),
    mu: float = typer.Option(0.01, "--mu", help="FedProx proximal strength."),
    local_steps: int = typer.Option(
        None, "--local-steps", min=1, help="DP-SGD steps per round (default: the plan's, 5 full-batch steps)."
    ),
    local_epochs: int = typer.Option(
        None,
        "--local-epochs",
        min=1,
        help="Local epochs per round (default: 2 without DP; under DP see --local-steps).",
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Without DP: rows per batch (default 128). With DP: expected units per Poisson batch (default: all, full batch).",
    ),
    lr: float = typer.Option(
        None, "--lr", help="Local learning rate (default: 1 / clipping norm with DP, 0.1 without)."
    ),
    momentum: float = typer.Option(None, "--momentum", help="Local momentum (default: 0 with DP, 0.9 without)."),
    max_grad_norm: float = typer.Option(
        None, "--max-grad-norm", help="DP-SGD clipping norm per privacy unit (default 0.05)."
    ),
    update_bound: float = typer.Option(
        5.0, "--update-bound", help="L2 bound on each platform's round update, and SecAgg+'s clipping range."
    ),
    validation: Path = typer.Option(
        None, "--validation", help="The bank's own labeled file: a round's aggregate must not make its loss worse."
    ),
    exclude_after: int = typer.Option(
        2, "--exclude-after", min=1, help="Exclude a platform failing the bank's checks this many times in a row."
    ),
    model: Architecture = typer.Option(Architecture.logistic, "--model", help="Model architecture."),
    seed: int = typer.Option(0, "--seed", help="Seed for initial weights and shuffling (DP noise: OS entropy)."),
    reproducible_noise: bool = typer.Option(
        False,
        "--reproducible-noise",
        help="Seed the platforms' DP noise from --seed (tests, benchmarks); a platform whose policy forbids it refuses.",
    ),
    test: Path = typer.Option(None, "--test", help="The bank's held-out labeled file, scored centrally each round."),
    out: Path = typer.Option(
        ..., "--out", help="Model directory to write (model.pt, encoder.json, meta.json, report.json)."
    ),
    central: bool = typer.Option(
        False, "--central", help="Yardstick: train the same model and a RandomForest on the pooled files."
    ),
    backend: Backend = typer.Option(
        Backend.inprocess,
        "--backend",
        help="Simulation Engine backend: inprocess (ClientApps in worker threads, starts in ms) or ray (Flower's Ray actors, ~10 s start-up).",
    ),
    deployment: bool = typer.Option(
        False, "--deployment", help="Run on a loopback SuperLink + SuperNodes instead of the simulation engine."
    ),
    epsilon_budget: float = typer.Option(
        None, "--epsilon-budget", help="Each platform's lifetime ε budget in its ledger (default: --epsilon)."
    ),
    ledger_db: str = typer.Option(
        None, "--ledger-db", help="SQLAlchemy URL of the privacy ledger (default: SQLite in --out)."
    ),
    consent_db: str = typer.Option(
        None,
        "--consent-db",
        help="SQLAlchemy URL of merchant consent records (yinqi client consent); merchants without consent are left out.",
    ),
    min_clients: int = typer.Option(
        2, "--min-clients", min=1, help="Fewest platforms whose updates a round must aggregate."
    ),
    platform_policy: Path = typer.Option(
        None,
        "--platform-policy",
        help="A privacy policy (policy.toml, as `yinqi client up --policy`) every simulated platform holds the run to; default: the run's own settings.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Train a credit model across platforms: federated (DP-SGD over merchants + SecAgg+ by default) or central."""
    from clients.policy import load_policy
    from federation.privacy import check_budget
    from server.fl.config import FederationConfig

    if not no_dp:
        check_budget(epsilon, delta)
    cfg = FederationConfig(
        clients=client,
        label=label,
        positive=positive,
        rounds=rounds,
        epsilon=epsilon,
        delta=delta,
        dp=not no_dp,
        secagg=not no_secagg,
        unit_column=unit_column,
        strategy=strategy.value,
        mu=mu,
        local_steps=local_steps,
        local_epochs=local_epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        max_grad_norm=max_grad_norm,
        update_bound=update_bound,
        validation=validation,
        exclude_after=exclude_after,
        architecture=model.value,
        seed=seed,
        reproducible_noise=reproducible_noise,
        test=test,
        out=out,
        epsilon_budget=epsilon_budget,
        ledger_db=ledger_db,
        consent_db=consent_db,
        min_clients=min_clients,
    )
    policy = load_policy(platform_policy) if platform_policy is not None else None
    if central:
        from yinqi.harness.central import train_central

        with console.status("training centrally on the pooled files"):
            result = train_central(cfg)
        if as_json:
            print(json.dumps(result.to_dict(), indent=2))
            return
        table = Table(title=f"central yardstick ({result.rows} rows)")
        for column in ("model", "AUC", "KS"):
            table.add_column(column)
        table.add_row(f"torch {cfg.architecture}", _fmt(result.torch_auc), _fmt(result.torch_ks))
        table.add_row("RandomForest", _fmt(result.rf_auc), _fmt(result.rf_ks))
        console.print(table)
        for name, reason in result.refused.items():
            console.print(f"[yellow]refused[/] {name}: {reason}")
        console.print(f"model written to {out} (version {result.version_hash[:12]})")
        return
    from federation.progress import RoundFollower, round_line

    follower = RoundFollower(out / "report.json", lambda r, rep: None if as_json else console.print(round_line(r, rep)))
    if deployment:
        from yinqi.harness.loopback import run_deployed

        with follower, console.status("federated training on a loopback SuperLink + SuperNodes"):
            report = run_deployed(cfg, policies=policy)
    else:
        from yinqi.harness.federated import run_federation

        with follower, console.status(f"federated training: {len(client)} platforms, {rounds} rounds (simulation)"):
            report = run_federation(cfg, backend=backend.value, policies=policy)
    from federation.plots import model_pictures

    pictures = model_pictures(Path(report.model_dir or out), test, label, positive)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    _print_report(report)
    for picture in pictures:
        console.print(f"picture {picture}")


def _print_report(report: Report) -> None:
    from yinqi.tables import print_wide

    print_wide(
        console,
        f"federated training ({report.engine})",
        ("round", "seconds", "took\npart", "refused", "fed AUC", "fed KS", "test AUC", "test KS"),
        [
            [
                str(r.round),
                f"{r.seconds:.2f}",
                str(len(r.participants)),
                str(len(r.refused)),
                _fmt(r.federated_auc),
                _fmt(r.federated_ks),
                _fmt(r.test_auc),
                _fmt(r.test_ks),
            ]
            for r in report.rounds
        ],
    )
    if report.weak_guarantee:
        console.print(f"weak guarantee: {report.weak_guarantee}", markup=False, soft_wrap=True)
    for name, reason in report.excluded.items():
        console.print(f"excluded by the bank: {name}: {reason}", markup=False, soft_wrap=True)
    if report.plan:
        console.print(
            f"plan: {report.plan.get('summary')}, {report.plan.get('rounds')} rounds, "
            f"server {report.plan.get('server')}, update bound {report.plan.get('update_bound')}",
            markup=False,
            soft_wrap=True,
        )
    for name in report.platforms:
        eps = report.epsilon.get(name)
        noise = report.dp_noise.get(name)
        unit = report.privacy_unit.get(name, {})
        per = f"per {unit.get('unit')} ({unit.get('units')} units)" if unit else ""
        prv = report.accounting.get(name, {}).get("prv")
        check = f", PRV accountant {prv:.3f}" if isinstance(prv, float) else ""
        state = (
            f"refused: {report.refused[name]}"
            if name in report.refused
            else f"excluded: {report.excluded[name]}"
            if name in report.excluded
            else f"ε spent {eps:.3f} {per}{check} (DP noise: {noise or '-'})"
            if eps is not None
            else "no DP"
        )
        console.print(f"  {name}: {state}", markup=False, soft_wrap=True)
        if unit.get("unit") == "row" and eps is not None:
            why = (
                "the run opted into row-level DP"
                if report.settings.get("unit-column") == "row"
                else f"its file has no '{report.settings.get('unit-column')}' column"
            )
            console.print(
                f"    {name}: each row is its own privacy unit ({why}): ε protects one row",
                markup=False,
                soft_wrap=True,
            )
    console.print(f"model written to {report.model_dir} (version {report.version_hash[:12]}) in {report.seconds:.1f} s")


def score(
    model: Path = typer.Option(..., "--model", help="Model directory written by `yinqi train`."),
    data: Path = typer.Option(..., "--data", help="Feature file to score (CSV/Parquet); a label column is ignored."),
    out: Path = typer.Option(
        ..., "--out", help="CSV to write: id columns (if any) and default_probability, in input order."
    ),
) -> None:
    """Write one default probability per input row, in input order, keeping id columns."""
    from rich.text import Text

    from federation.batch_scoring import score_file

    result = score_file(model, data, out)
    for warning in result.warnings():
        Console(stderr=True).print(Text(f"warning: {warning}"), highlight=False, soft_wrap=True)
    console.print(f"scored {result.rows} rows with model {result.model_version[:12]} -> {result.out}")


def ledger(
    db: str = typer.Option(
        None, "--db", help="SQLAlchemy URL of the privacy ledger (default: YINQI_DB_URL / the data dir)."
    ),
    platform: str = typer.Option(None, "--platform", help="Only this platform."),
    budget: float = typer.Option(None, "--budget", help="Show what is left of this lifetime ε budget."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
) -> None:
    """Show a platform's privacy ledger: ε spent per run and round (runs add up)."""
    from clients.ledger import PrivacyLedger
    from federation.config import db_url

    book = PrivacyLedger(db or db_url("platform"))
    entries = book.entries(platform)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "platform": e.platform,
                        "run_id": e.run_id,
                        "round": e.round,
                        "epsilon": e.epsilon,
                        "delta": e.delta,
                        "recorded_at": e.recorded_at.isoformat(),
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return
    table = Table(title="privacy ledger")
    for column in ("platform", "run", "round", "ε (run so far)", "δ", "recorded (UTC)"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.platform,
            e.run_id,
            str(e.round),
            f"{e.epsilon:.4f}",
            f"{e.delta:g}",
            e.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)
    for name in sorted({e.platform for e in entries}):
        summary = book.summary(name, run_id="")
        left = f", {budget - summary.spent_other_runs:.4f} left of {budget:g}" if budget is not None else ""
        console.print(f"{name}: ε spent over all runs {summary.spent_other_runs:.4f}{left}")
