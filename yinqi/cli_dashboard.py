"""`yinqi bank dashboard`: the bank's operations dashboard in the browser, read-only.

Serves HTTPS with mutual TLS on loopback by default: the browser presents an operator
certificate from the bank's CA (`yinqi bank certs issue NAME --role operator`, imported into the
browser as a PKCS#12 file or passed to curl with --cert/--key). Pages read the bank's database
through the modules the CLI uses, so their numbers are `yinqi bank metrics --json`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from yinqi.bank_options import Db, ModelsDir, console

Certs = Annotated[
    Path,
    typer.Option(
        "--certs", help="The bank's CA directory (`yinqi bank certs init`): server certificate, CA, revocation list."
    ),
]


def dashboard(
    certs: Certs,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (default loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: a free one).", min=0, max=65535)] = 8443,
    db: Db = None,
    models_dir: ModelsDir = None,
    alerts_db: Annotated[
        str | None,
        typer.Option("--alerts-db", help="Database of the equipment alerts the bank received (default: --db)."),
    ] = None,
    anchor_db: Annotated[
        str | None, typer.Option("--anchor-db", help="Database of the bank's anchoring store (default: --db).")
    ] = None,
    iot_db: Annotated[
        str | None, typer.Option("--iot-db", help="The IoT monitor's store: device positions and usage (map, rent).")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="The IoT rules TOML whose geofence the map draws (default: shipped).")
    ] = None,
    chain: Annotated[
        bool, typer.Option("--chain/--no-chain", help="Read receivables from the configured chain (`yinqi chain`'s).")
    ] = False,
    url_file: Annotated[
        Path | None, typer.Option("--url-file", help="Write the URL here once serving (for `bank up`).")
    ] = None,
) -> None:
    """Serve the read-only operations dashboard (lending, models, receivables, leasing,
    anchoring) over mutual TLS until Ctrl-C; prints its URL."""
    from server.dashboard.data import Sources
    from server.dashboard.serve import start
    from server.security.ca import CertSet
    from yinqi.dashboard_fleet import MonitorFleet

    fleet = MonitorFleet(iot_db, rules) if iot_db else None
    sources = Sources(db, models_dir, alerts_db, anchor_db, fleet, chain)
    running = start(sources, CertSet.in_dir(certs), host, port)
    if url_file is not None:
        from federation import files

        files.write_text(url_file, running.url)
    console.print(f"dashboard on {running.url} (mutual TLS: operator certificates of {certs} only); Ctrl-C stops")
    try:
        running.thread.join() if running.thread else None
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    console.print("stopped")


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["bank"].command("dashboard")(dashboard)
