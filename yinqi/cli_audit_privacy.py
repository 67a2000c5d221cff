"""`yinqi audit privacy`: a membership-inference audit of a released credit model.

The attacks and the retraining live in `clients.privacy_audit`; this module reads the flags, shows
progress, prints the table (or JSON) and writes the ROC plot.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["audit"].command("privacy")(privacy)


def privacy(
    model: Path = typer.Argument(..., help="Model directory written by `yinqi train`."),
    members: list[Path] = typer.Option(
        ...,
        "--members",
        help="A labeled file whose merchants trained the model (one per platform, as trained); repeat per file.",
    ),
    non_members: list[Path] = typer.Option(
        ...,
        "--non-members",
        help="A labeled file of merchants from the same population that did not train it; repeat per file.",
    ),
    compare: list[str] = typer.Option(
        None,
        "--compare",
        help="Also attack models retrained the same way at this ε ('inf': no DP); repeat. Default: inf and 1.",
    ),
    shadows: int = typer.Option(8, "--shadows", help="Shadow models per ε for LiRA (even, 2-64)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the shadows' data splits, training and noise."),
    plot: Path = typer.Option(
        Path("privacy-audit.png"), "--plot", help="Where to write the PNG of the attacks' ROC curves."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the audit as JSON."),
) -> None:
    """Can an attacker tell whether a merchant trained MODEL? Loss-threshold and LiRA attacks per privacy unit."""
    from clients.privacy_audit import audit_model, parse_epsilon, plot_roc

    wanted = [parse_epsilon(text) for text in compare] if compare else None
    with console.status("privacy audit: starting") as status:
        report = audit_model(
            model,
            members,
            non_members,
            compare=wanted,
            shadows=shadows,
            seed=seed,
            progress=lambda message: status.update(f"privacy audit: {message}"),
        )
        report.plot = str(plot_roc(report, plot))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=f"membership inference per {report.unit}: {report.members} members, {report.non_members} not")
    for column in ("ε", "model", "loss AUC", "TPR@1%FPR", "LiRA AUC", "TPR@1%FPR", "DP allows"):
        table.add_column(column, no_wrap=True)
    for level in report.levels:
        row = level.to_dict()
        table.add_row(
            row["epsilon_label"],
            "released" if level.source == "released model" else "retrained",
            f"{level.loss.auc:.3f}",
            f"{level.loss.tpr_at_1pct_fpr:.3f}",
            f"{level.lira.auc:.3f}",
            f"{level.lira.tpr_at_1pct_fpr:.3f}",
            f"{level.tpr_bound:.3f}",
        )
    console.print(table)
    console.print(
        "TPR@1%FPR: members caught when 1 % of non-members are wrongly accused; "
        "DP allows: the most any attack can catch at that rate under (ε, δ)-DP",
        markup=False,
        soft_wrap=True,
    )
    for level in report.levels:
        groups = ", ".join(f"{name} {auc:.3f}" for name, auc in level.subgroups.items())
        if groups:
            console.print(f"ε={level.to_dict()['epsilon_label']}: LiRA AUC among merchants {groups}", markup=False)
    console.print(
        "AUC 0.5: the attacker cannot tell members from non-members; these attacks give a lower bound "
        f"of what leaks. {report.shadows} shadow models per ε, {report.seconds:.1f} s; ROC curves in {report.plot}",
        markup=False,
        soft_wrap=True,
    )
