"""Platforms that do not play by the rules: what a careless or hostile platform can run on its
own node. Each is the honest ClientApp with one thing changed, so everything else (the policy,
SecAgg+'s masking, the evaluation) still looks normal to the bank."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

import clients.app as honest

Update = list[np.ndarray]


def tampering_app(tamper: Callable[[Update], Update]) -> ClientApp:
    """The honest ClientApp, except that its update is passed through `tamper` before SecAgg+
    masks it (the mod clips it to SecAgg+'s range and quantises it, as on any node)."""
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict, recorddict_to_fitres

    app = ClientApp()
    app.query()(honest.query)
    app.evaluate()(honest.evaluate)

    @app.train(mods=[honest.secaggplus_when_requested])
    def train(msg: Message, context: Context) -> Message:
        reply = honest.train(msg, context)
        fitres = recorddict_to_fitres(reply.content, keep_input=True)
        if fitres.num_examples > 0:
            fitres.parameters = ndarrays_to_parameters(tamper(parameters_to_ndarrays(fitres.parameters)))
        return Message(fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)

    return app


def scaled(factor: float) -> ClientApp:
    """Sends its update multiplied by `factor` (to drag the model its way)."""
    return tampering_app(lambda update: [u * np.float32(factor) for u in update])


def not_a_number() -> ClientApp:
    """Sends NaN in place of every value of its update (a broken node)."""
    return tampering_app(lambda update: [np.full_like(u, np.nan) for u in update])


def flipped_labels(path: Path, out: Path, label: str = "default") -> Path:
    """A copy of a platform's file with every label flipped (trained and evaluated on as is)."""
    frame = pd.read_csv(path)
    frame[label] = 1 - frame[label]
    frame.to_csv(out, index=False)
    return out


def perfect_scores() -> ClientApp:
    """Trains honestly, but reports score histograms that separate its classes perfectly (to
    inflate the federated AUC), with counts that add up to its rows."""
    from flwr.compat.common.recorddict_compat import evaluateres_to_recorddict, recorddict_to_evaluateres

    app = ClientApp()
    app.query()(honest.query)

    @app.train(mods=[honest.secaggplus_when_requested])
    def train(msg: Message, context: Context) -> Message:
        return honest.train(msg, context)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        reply = honest.evaluate(msg, context)
        res = recorddict_to_evaluateres(reply.content)
        metrics = dict(res.metrics)
        if "pos-hist" in metrics:
            pos = np.frombuffer(metrics["pos-hist"], dtype=np.int64)
            neg = np.frombuffer(metrics["neg-hist"], dtype=np.int64)
            fake_pos, fake_neg = np.zeros_like(pos), np.zeros_like(neg)
            fake_pos[-1], fake_neg[0] = pos.sum(), neg.sum()
            metrics["pos-hist"], metrics["neg-hist"] = fake_pos.tobytes(), fake_neg.tobytes()
            res.metrics = metrics
        return Message(evaluateres_to_recorddict(res), reply_to=msg)

    return app


def under_reporting(factor: float) -> ClientApp:
    """Trains honestly but reports its ε multiplied by `factor` (a buggy or lying accountant)."""
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict, recorddict_to_fitres

    app = ClientApp()
    app.query()(honest.query)
    app.evaluate()(honest.evaluate)

    @app.train(mods=[honest.secaggplus_when_requested])
    def train(msg: Message, context: Context) -> Message:
        reply = honest.train(msg, context)
        fitres = recorddict_to_fitres(reply.content, keep_input=True)
        if "epsilon" in fitres.metrics:
            fitres.metrics = {**fitres.metrics, "epsilon": float(fitres.metrics["epsilon"]) * factor}
        return Message(fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)

    return app
