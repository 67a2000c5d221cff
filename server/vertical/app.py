"""The bank's Flower ServerApp for vertical training (`server.vertical.training.run_vertical`).

The same `app` runs on the Simulation Engine (`yinqi.harness.vertical.simulate_vertical`) and
on a real SuperLink (`yinqi.harness.vertical.deploy_vertical`, `server.deploy.fastgrid`).
"""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    from server.vertical.training import run_vertical

    run_vertical(grid, context)
