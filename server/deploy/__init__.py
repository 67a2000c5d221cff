"""The Flower Deployment Engine for yinqi: SuperLink + SuperNodes as supervised processes.

`run_deployed(config) -> Report` trains on a loopback deployment (tests, benchmarks,
`yinqi train --deployment`); `yinqi bank up/train/down` and `yinqi client up` run the same
pieces as long-lived services across machines, with TLS and SuperNode authentication.
"""

from __future__ import annotations

from typing import Any


def run_deployed(config: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
    """See `server.deploy.run.run_deployed` (imported lazily: flwr is heavy)."""
    from server.deploy.run import run_deployed as _run

    return _run(config, **kwargs)


__all__ = ["run_deployed"]
