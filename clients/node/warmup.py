"""Warm-ups a ClientApp worker runs once before it forks task processes.

Torch and Opacus initialise a lot lazily on first use (dispatch tables, autograd hooks, the
accountant); pandas and SQLAlchemy likewise. Done once in the parent, every forked task starts
warm: a tiny DP-SGD step costs ~0.01 s in a child instead of ~0.33 s. Run single-threaded
(OMP_NUM_THREADS=1) so no thread pool exists at fork time.
"""

from __future__ import annotations

import io


def torch_dp() -> None:
    """One tiny DP-SGD epoch with Opacus, a CSV parse and an in-memory SQLite round trip."""
    import warnings

    import pandas as pd
    import torch
    from opacus import PrivacyEngine

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32, 1)).float()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, optimizer, loader = PrivacyEngine().make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0
        )
        for xb, yb in loader:
            optimizer.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(xb), yb).backward()
            optimizer.step()
    pd.read_csv(io.StringIO("a,b\n1,x\n2,y\n"))
    import sqlalchemy

    with sqlalchemy.create_engine("sqlite://").connect() as conn:
        conn.execute(sqlalchemy.text("select 1"))
