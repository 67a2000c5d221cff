"""The platform's half of a vertical run, between Flower messages.

`PlatformParty.open(...)` prepares a run: the platform's rows in the PSI session's order
(handle = position), the merchants it withholds (no longer in its file, or consent withdrawn),
its encoder and bottom model, and its own privacy plan: the stricter of the ε the bank asked
for and the platform's own floor (`feature-epsilon` in its node config), checked against its
lifetime budget in its privacy ledger before anything is released. Between messages the whole
state lives in Flower's `context.state` (`to_records` / `from_records`), so the same code runs
in-process and in a deployed ClientApp process.

A request is refused, with a one-line reason, when it names a handle outside the session, a
withheld merchant, or a merchant whose embedding was already released as often as the plan
allows (the bank cannot average the noise away by asking again).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from clients.vertical.store import SessionBook
from federation.errors import YinqiError
from federation.preprocess import Encoder
from federation.vertical.config import PlatformNodeConfig, VerticalConfig
from federation.vertical.privacy import ReleasePlan

if TYPE_CHECKING:  # pragma: no cover
    from flwr.app import RecordDict

    from federation.vertical.steps import PlatformHalf

STATE, WEIGHTS, RELEASES = "yinqi-vfl", "yinqi-vfl-bottom", "yinqi-vfl-releases"


class PartyError(YinqiError):
    """A vertical request the platform refuses (the reason goes back to the bank)."""


@lru_cache(maxsize=4)
def _rows(
    data_path: str, mtime: float, mapping: str | None, session_id: str, platform_db: str | None
) -> tuple[Any, np.ndarray, list[str]]:
    """(feature frame in handle order, present mask, ids in handle order) for a session; cached
    per file version (a deployed worker forks per message, so only the simulation reuses it)."""
    from federation.vertical.data import load_mapping, load_party

    table = load_party(data_path, load_mapping(mapping), labelled=False)
    order = SessionBook(platform_db).get(session_id).order
    index = table.index()
    present = np.array([m in index for m in order], dtype=bool)
    rows = np.array([index.get(m, 0) for m in order], dtype=np.int64)
    frame = table.frame.iloc[rows].reset_index(drop=True)
    return frame, present, order


def session_rows(node: PlatformNodeConfig, session_id: str) -> tuple[Any, np.ndarray, list[str]]:
    path = str(node.data_path)
    if not os.path.isfile(path):
        raise PartyError(f"{path}: the platform's data file is missing")
    mapping = None if node.mapping_path is None else str(node.mapping_path)
    return _rows(path, os.path.getmtime(path), mapping, session_id, node.platform_db)


@dataclass
class PlatformParty:
    cfg: VerticalConfig
    node: PlatformNodeConfig
    encoder: Encoder
    withheld: set[int]
    plan: ReleasePlan | None
    weights: list[np.ndarray]
    momentum: list[np.ndarray] = field(default_factory=list)
    releases: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    pending: list[int] = field(default_factory=list)
    step: int = 0

    # -- opening a run -----------------------------------------------------------------------
    @classmethod
    def open(cls, cfg: VerticalConfig, node: PlatformNodeConfig, run_id: str) -> PlatformParty:
        from clients.consent import ConsentBook
        from clients.ledger import PrivacyLedger
        from federation.model import get_weights
        from federation.vertical.data import PartyTable, fit_encoder
        from federation.vertical.model import bottom_model

        frame, present, order = session_rows(node, cfg.session)
        # Training uses only merchants whose consent is in force, when the platform keeps a book.
        allowed = ConsentBook(node.consent_db).consented(order) if node.consent_db else np.ones(len(order), bool)
        withheld = {int(i) for i in np.flatnonzero(~(present & allowed))}
        usable = np.flatnonzero(present & allowed)
        if len(usable) == 0:
            raise PartyError(
                f"platform {node.platform_name}: no merchant of session {cfg.session} is usable (file or consent)"
            )
        encoder = fit_encoder(PartyTable([order[i] for i in usable], frame.iloc[usable], None, str(node.data_path)))
        plan = None
        wanted = [e for e in (cfg.feature_epsilon, node.feature_epsilon) if e is not None]
        if wanted:
            plan = ReleasePlan.calibrate(min(wanted), cfg.delta, cfg.epochs + 1)  # +1: the evaluation release
            ledger = PrivacyLedger(_ledger_url(node))
            lifetime = node.epsilon_budget is not None
            ledger.check_budget(
                node.platform_name, run_id, plan.epsilon, node.epsilon_budget or plan.epsilon, lifetime=lifetime
            )
            ledger.record(node.platform_name, run_id, 0, plan.epsilon, cfg.delta)  # reserved until the run settles
        model = bottom_model(encoder.n_features, cfg.embedding_dim, cfg.hidden, cfg.seed)
        return cls(cfg, node, encoder, withheld, plan, get_weights(model), releases=np.zeros(len(order), np.int32))

    # -- state between messages --------------------------------------------------------------
    def to_records(self, state: RecordDict) -> None:
        from flwr.app import Array, ArrayRecord, ConfigRecord

        state.config_records[STATE] = ConfigRecord(
            {
                "encoder": json.dumps(self.encoder.to_dict()),
                "withheld": json.dumps(sorted(self.withheld)),
                "plan": json.dumps(None if self.plan is None else self.plan.__dict__),
                "pending": json.dumps(self.pending),
                "step": self.step,
            }
        )
        arrays = {f"w{i}": Array(np.ascontiguousarray(w)) for i, w in enumerate(self.weights)}
        arrays.update({f"m{i}": Array(np.ascontiguousarray(m)) for i, m in enumerate(self.momentum)})
        state.array_records[WEIGHTS] = ArrayRecord(array_dict=arrays)
        state.array_records[RELEASES] = ArrayRecord(array_dict={"count": Array(self.releases)})

    @classmethod
    def from_records(cls, cfg: VerticalConfig, node: PlatformNodeConfig, state: RecordDict) -> PlatformParty:
        record = state.config_records.get(STATE)
        if record is None:
            raise PartyError("no vertical run is open on this platform (the bank must say hello first)")
        weights_record = state.array_records[WEIGHTS]
        weights = [
            weights_record[k].numpy()
            for k in sorted((k for k in weights_record if k[0] == "w"), key=lambda k: int(k[1:]))
        ]
        momentum = [
            weights_record[k].numpy()
            for k in sorted((k for k in weights_record if k[0] == "m"), key=lambda k: int(k[1:]))
        ]
        plan = json.loads(str(record["plan"]))
        return cls(
            cfg,
            node,
            Encoder.from_dict(json.loads(str(record["encoder"]))),
            set(json.loads(str(record["withheld"]))),
            None if plan is None else ReleasePlan(**plan),
            weights,
            momentum,
            state.array_records[RELEASES]["count"].numpy().copy(),
            list(json.loads(str(record["pending"]))),
            int(str(record["step"])),
        )

    # -- the work ----------------------------------------------------------------------------
    def _half(self) -> PlatformHalf:
        """The bottom model with its optimizer state, ready to step."""
        import torch

        from federation.model import set_weights
        from federation.vertical.model import bottom_model
        from federation.vertical.steps import Dp, PlatformHalf, secure_generator

        model = bottom_model(self.encoder.n_features, self.cfg.embedding_dim, self.cfg.hidden, self.cfg.seed)
        set_weights(model, self.weights)
        dp = None if self.plan is None else Dp(self.plan.noise_multiplier, self.cfg.embedding_clip, 1.0)
        seed = (self.cfg.seed * 1_000_003 + self.step) if self.cfg.reproducible else None
        half = PlatformHalf(
            model,
            clip=self.cfg.embedding_clip,
            lr=self.cfg.lr,
            momentum=self.cfg.momentum,
            dp=dp,
            generator=secure_generator(seed),
        )
        if self.momentum:
            for param, buffer in zip(model.parameters(), self.momentum, strict=True):
                half.optimizer.state[param]["momentum_buffer"] = torch.as_tensor(buffer)
        return half

    def _keep(self, half: PlatformHalf) -> None:
        from federation.model import get_weights

        self.weights = get_weights(half.model)
        self.momentum = [
            half.optimizer.state[p]["momentum_buffer"].detach().numpy().copy()
            for p in half.model.parameters()
            if "momentum_buffer" in half.optimizer.state[p]
        ]

    def _encoded(self, handles: list[int]) -> np.ndarray:
        frame, _present, _order = session_rows(self.node, self.cfg.session)
        return self.encoder.transform(frame.iloc[handles].reset_index(drop=True), file=str(self.node.data_path))

    def check(self, handles: np.ndarray) -> list[int]:
        """The requested handles as ints, refused when any is unknown, withheld, repeated or spent."""
        rows = [int(h) for h in np.asarray(handles).reshape(-1)]
        if not rows:
            return rows
        bad = [h for h in rows if not 0 <= h < len(self.releases)]
        if bad:
            raise PartyError(f"handle {bad[0]} is not in PSI session {self.cfg.session} ({len(self.releases)} rows)")
        withheld = [h for h in rows if h in self.withheld]
        if withheld:
            raise PartyError(f"handle {withheld[0]} is withheld by the platform (consent withdrawn or merchant gone)")
        if len(set(rows)) != len(rows):
            raise PartyError("a batch names the same handle twice")
        if self.plan is not None:
            spent = [h for h in rows if self.releases[h] >= self.plan.releases]
            if spent:
                raise PartyError(
                    f"handle {spent[0]}: its embedding was released {self.plan.releases} times, all the privacy plan allows"
                )
        return rows

    def step_with(self, grads: np.ndarray | None, handles: np.ndarray) -> np.ndarray:
        """Apply the bank's gradients for the pending batch, then release the next batch."""
        if self.pending:
            if grads is None or len(grads) != len(self.pending):
                raise PartyError(
                    f"{0 if grads is None else len(grads)} gradients for a pending batch of {len(self.pending)}"
                )
            if not np.isfinite(grads).all() or np.abs(grads).max(initial=0.0) > 1e6:
                raise PartyError(
                    "the bank's gradients hold non-finite or absurd values (> 1e6); refusing to apply them"
                )
        half = self._half()
        if self.pending and grads is not None:
            half.forward(self._encoded(self.pending))
            half.backward(grads)
        rows = self.check(handles)
        released = np.zeros((0, self.cfg.embedding_dim), np.float32)
        if rows:
            released = half.forward(self._encoded(rows))
            self.releases[rows] += 1
        self.pending = rows
        self.step += 1
        self._keep(half)
        return released

    def release(self, handles: np.ndarray) -> np.ndarray:
        """Embeddings for evaluation (noised and counted under the privacy plan)."""
        rows = self.check(handles)
        half = self._half()
        out = half.forward(self._encoded(rows)) if rows else np.zeros((0, self.cfg.embedding_dim), np.float32)
        self.releases[rows] += 1
        return out

    def epsilon_spent(self) -> float:
        if self.plan is None:
            return 0.0
        return self.plan.spent(int(self.releases.max(initial=0)))

    def finish(self, run_id: str) -> dict[str, Any]:
        """Save the bottom half (its hash goes to the bank's registry) and settle the ledger."""
        from clients.ledger import PrivacyLedger
        from federation.model import set_weights
        from federation.vertical.model import BOTTOM_FILE, bottom_model, save_half

        model = bottom_model(self.encoder.n_features, self.cfg.embedding_dim, self.cfg.hidden, self.cfg.seed)
        set_weights(model, self.weights)
        directory = self.node.model_dir / self.cfg.session
        meta = {
            "embedding_dim": self.cfg.embedding_dim,
            "hidden": self.cfg.hidden,
            "seed": self.cfg.seed,
            "embedding_clip": self.cfg.embedding_clip,
            "session": self.cfg.session,
            "platform": self.node.platform_name,
            "run_id": run_id,
            "feature_epsilon": self.epsilon_spent() if self.plan else None,
        }
        digest = save_half(directory, BOTTOM_FILE, model, self.encoder, meta)
        spent = self.epsilon_spent()
        if self.plan is not None:
            PrivacyLedger(_ledger_url(self.node)).record(self.node.platform_name, run_id, 1, spent, self.cfg.delta)
        return {
            "bottom-sha256": digest,
            "feature-epsilon": spent,
            "model-dir": str(directory),
            "withheld": len(self.withheld),
        }


def _ledger_url(node: PlatformNodeConfig) -> str:
    from federation.config import db_url

    return node.platform_db or db_url("platform")
