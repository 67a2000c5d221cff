"""The `yinqi` command: one typer app composed of each capability's commands.

Each `yinqi/cli_<area>.py` module exposes `register(root, groups)` and keeps heavy imports
(torch, flwr, web3, paho) inside its command functions so `yinqi --help` stays fast. Groups that
several areas share (`audit`, `bank`, `client`) are created here and handed to every module.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer
from rich.console import Console
from rich.text import Text

from federation.errors import YinqiError

err_console = Console(stderr=True)

app = typer.Typer(
    name="yinqi",
    help=(
        "yinqi (银企): privacy-preserving federated computation for banks and the enterprises "
        "they lend to: federated credit scoring, on-chain receivables financing, IoT leasing."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

GROUPS: dict[str, typer.Typer] = {
    "bank": typer.Typer(help="The bank's side: SuperLink, services, federated runs.", no_args_is_help=True),
    "client": typer.Typer(help="A platform's side: its SuperNode, consent and privacy ledger.", no_args_is_help=True),
    "audit": typer.Typer(
        help="Verify anchored proofs from the chain alone; audit a model's privacy.", no_args_is_help=True
    ),
}
for _name, _group in GROUPS.items():
    app.add_typer(_group, name=_name)

# The areas whose commands make up the CLI, in --help order.
AREAS = (
    "cli_data",
    "cli_fl",
    "cli_audit_privacy",
    "cli_deploy",
    "cli_platform",
    "cli_chain",
    "cli_iot",
    "cli_bank",
    "cli_dashboard",
    "cli_vertical",
    "cli_demo",
)


def _register_areas() -> None:
    for area in AREAS:
        importlib.import_module(f"yinqi.{area}").register(app, GROUPS)


_register_areas()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"yinqi {version('yinqi')}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full tracebacks instead of one-line errors."),
    _version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print yinqi's version and exit."
    ),
) -> None:
    if verbose:
        os.environ["YINQI_VERBOSE"] = "1"


def _error(message: str) -> None:
    # The message is plain text: no rich markup, so "[field]" in a message survives.
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point: user mistakes become one line and exit code 2."""
    import click
    from pydantic import ValidationError

    try:
        # Not standalone: click's usage errors (a bad choice or number on any command) come
        # here and print as one line, not a framed box; typer turns Ctrl-C into exit code 130.
        code = app(standalone_mode=False)
    except click.ClickException as exc:
        where = f"{exc.ctx.command_path}: " if isinstance(exc, click.UsageError) and exc.ctx else ""
        _error(where + exc.format_message())
        sys.exit(exc.exit_code)
    except click.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except ValidationError as exc:  # settings built from flags: a user mistake, not a bug
        if os.environ.get("YINQI_VERBOSE"):
            traceback.print_exc()
        _error(_one_line(exc))
        sys.exit(2)
    except YinqiError as exc:
        if os.environ.get("YINQI_VERBOSE"):
            traceback.print_exc()
        _error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    if code == 130:
        err_console.print("interrupted")
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(exc: Exception) -> str:
    """A settings object's validation error as 'field: what was wrong' (pydantic's first error)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        return f"{where}: {first.get('msg', exc)} (got {first.get('input')!r})"
    return str(exc)
