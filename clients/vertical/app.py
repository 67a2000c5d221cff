"""The platform's Flower ClientApp for vertical training (`docs/vertical.md`).

Four handlers, one per message the bank's ServerApp sends:

- `query.hello`: open the run (`PlatformParty.open`): rows of the PSI session, withheld
  merchants, encoder, bottom model, the platform's own privacy plan (refused past its budget);
- `train.step`: apply the gradients for the last batch, then release the next batch's
  embeddings (clipped; noised under the platform's plan);
- `evaluate.embed`: release embeddings of held-out merchants for the bank's evaluation;
- `train.finish`: save the bottom half in the platform's model directory, settle the ledger,
  return its hash.

A refusal is a reply whose config says `refused` with the reason (the bank stops the run and
reports it); nothing is released. torch is imported inside the handlers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from federation.errors import YinqiError

app = ClientApp()
REPLY, ARRAYS = "vfl-reply", "vfl-arrays"


def _settings(context: Context) -> tuple[Any, Any]:
    from federation.vertical.config import PlatformNodeConfig, VerticalConfig

    return VerticalConfig.from_run_config(dict(context.run_config)), PlatformNodeConfig.from_node_config(
        dict(context.node_config)
    )


def _reply(msg: Message, config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Message:
    content = RecordDict({REPLY: ConfigRecord(config)})
    if arrays:
        content.array_records[ARRAYS] = ArrayRecord(
            array_dict={k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()}
        )
    return Message(content, reply_to=msg)


def _array(msg: Message, name: str) -> np.ndarray | None:
    record = msg.content.array_records.get(ARRAYS)
    return None if record is None or name not in record else record[name].numpy()


def _refused(msg: Message, platform: str, exc: Exception) -> Message:
    return _reply(msg, {"platform": platform, "refused": str(exc)})


@app.query("hello")
def hello(msg: Message, context: Context) -> Message:
    """Open the run and say what this platform brings (row count, withheld handles, its plan)."""
    import json

    from clients.vertical.party import PlatformParty

    platform = "?"
    try:
        cfg, node = _settings(context)
        platform = node.platform_name
        party = PlatformParty.open(cfg, node, str(context.run_id))
        party.to_records(context.state)
        return _reply(
            msg,
            {
                "platform": platform,
                "rows": len(party.releases),
                "withheld": json.dumps(sorted(party.withheld)),
                "n-features": party.encoder.n_features,
                "feature-epsilon": party.plan.epsilon if party.plan else 0.0,
                "noise-multiplier": party.plan.noise_multiplier if party.plan else 0.0,
            },
        )
    except YinqiError as exc:
        return _refused(msg, platform, exc)


@app.train("step")
def step(msg: Message, context: Context) -> Message:
    """Gradients for the previous batch in, embeddings of the next batch out."""
    from clients.vertical.party import PlatformParty

    platform = "?"
    try:
        cfg, node = _settings(context)
        platform = node.platform_name
        party = PlatformParty.from_records(cfg, node, context.state)
        handles = _array(msg, "handles")
        released = party.step_with(_array(msg, "grads"), np.zeros(0, np.int64) if handles is None else handles)
        party.to_records(context.state)
        return _reply(msg, {"platform": platform, "step": party.step}, {"embeddings": released})
    except YinqiError as exc:
        return _refused(msg, platform, exc)


@app.evaluate("embed")
def embed(msg: Message, context: Context) -> Message:
    """Embeddings of the held-out merchants the bank names (counted as a release)."""
    from clients.vertical.party import PlatformParty

    platform = "?"
    try:
        cfg, node = _settings(context)
        platform = node.platform_name
        party = PlatformParty.from_records(cfg, node, context.state)
        handles = _array(msg, "handles")
        released = party.release(np.zeros(0, np.int64) if handles is None else handles)
        party.to_records(context.state)
        return _reply(msg, {"platform": platform}, {"embeddings": released})
    except YinqiError as exc:
        return _refused(msg, platform, exc)


@app.train("finish")
def finish(msg: Message, context: Context) -> Message:
    """Save the bottom half; its hash and the ε spent go back to the bank."""
    from clients.vertical.party import PlatformParty

    platform = "?"
    try:
        cfg, node = _settings(context)
        platform = node.platform_name
        party = PlatformParty.from_records(cfg, node, context.state)
        if party.pending:
            raise YinqiError(
                f"{len(party.pending)} released rows never got their gradients; the run did not finish cleanly"
            )
        summary = party.finish(str(context.run_id))
        return _reply(msg, {"platform": platform, **summary})
    except YinqiError as exc:
        return _refused(msg, platform, exc)
