"""Model registry: every federated run's model as a numbered version with its provenance.

A version (`v1`, `v2`, ...) records the model's content hash (`federation.model`'s
`version_hash`: sha256 over weights and encoder), the federated AUC/KS, participants, rounds and
ε per platform from the run's `report.json`, and its status: `candidate` when registered,
`promoted` when it becomes the model that scores by default (the previous one is then
`retired`; `server.credit.promotion` re-evaluates the credit lines). The model directory is copied into the registry's store so the files an auditor
re-hashes are the ones that were registered; the hash is queued on the anchoring outbox
(`kind="model"`, `ref=version`).
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Engine, Float, Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from contracts.outbox import AnchorOutbox
from federation.clock import utcnow
from federation.config import data_dir
from federation.storage import UtcDateTime, session_scope, url_of, write_transaction
from server import faults
from server.credit.errors import BankError
from server.db import BankBase, bank_engine

log = logging.getLogger(__name__)

MODEL_FILES = ("model.pt", "encoder.json", "meta.json", "report.json")
STATUSES = ("candidate", "promoted", "retired")


class ModelVersion(BankBase):
    """One registered model version."""

    __tablename__ = "bank_model_versions"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    auc: Mapped[float | None] = mapped_column(Float, nullable=True)
    ks: Mapped[float | None] = mapped_column(Float, nullable=True)
    rounds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    participants: Mapped[list[str]] = mapped_column(JSON, default=list)
    epsilon: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    anchor_leaf: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    promoted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "status": self.status,
            "auc": self.auc,
            "ks": self.ks,
            "rounds": self.rounds,
            "participants": list(self.participants or []),
            "epsilon": dict(self.epsilon or {}),
            "created_at": self.created_at.isoformat(),
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "anchor_leaf": self.anchor_leaf,
            "path": self.path,
        }


def anchor_record(version: str, sha256: str) -> bytes:
    """The bytes anchored for a model: canonical JSON binding the version to its hash."""
    return json.dumps(
        {"kind": "model", "sha256": sha256, "version": version}, sort_keys=True, separators=(",", ":")
    ).encode()


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def summarize_report(report: dict[str, Any]) -> dict[str, Any]:
    """Federated AUC/KS, rounds, participants and ε per platform from a run's report.json.

    Reads `server.fl.report.Report`'s layout: `final` metrics (else the last round's
    `federated_auc`/`federated_ks`), `rounds` (a list), `participants`, `epsilon`, `refused` and
    each round's `dropped`. Missing fields stay empty so a hand-made model can be registered.
    """
    rounds_list = (
        [r for r in report.get("rounds", []) if isinstance(r, dict)] if isinstance(report.get("rounds"), list) else []
    )
    final: dict[str, Any] = report["final"] if isinstance(report.get("final"), dict) else {}
    last: dict[str, Any] = rounds_list[-1] if rounds_list else {}

    def metric(name: str) -> float | None:
        for source, key in (
            (final, f"federated_{name}"),
            (final, name),
            (last, f"federated_{name}"),
            (last, name),
            (report, name),
        ):
            value = _number(source.get(key))
            if value is not None:
                return value
        return None

    rounds = report["rounds"] if isinstance(report.get("rounds"), int) else (len(rounds_list) or None)
    epsilon_raw: dict[str, Any] = report["epsilon"] if isinstance(report.get("epsilon"), dict) else {}
    epsilon = {str(k): float(v) for k, v in epsilon_raw.items() if _number(v) is not None}
    # A participant is a platform whose update was aggregated in at least one round; platforms
    # that only joined (refused every round, e.g. over their ε budget) are kept under "joined".
    trained = sorted({str(p) for r in rounds_list for p in (r.get("participants") or [])})
    participants_raw = trained or report.get("participants") or list(epsilon)
    participants = sorted(str(p) for p in participants_raw) if isinstance(participants_raw, (list, tuple)) else []
    dropped = sorted({str(d) for r in rounds_list for d in r.get("dropped", []) or []})
    extra = {k: report[k] for k in ("refused", "engine", "mode", "settings", "test") if report.get(k)}
    # What the ε is about, both accountants, a weak-guarantee mark and exclusions (issue 12).
    for key in ("privacy_unit", "accounting", "weak_guarantee", "excluded"):
        if report.get(key):
            extra[key] = report[key]
    joined = report.get("participants")
    if trained and isinstance(joined, (list, tuple)) and sorted(map(str, joined)) != trained:
        extra["joined"] = sorted(map(str, joined))
    if dropped:
        extra["dropped"] = dropped
    for key in ("test_auc", "test_ks"):  # the bank's own held-out set, when the run had one
        if _number(final.get(key)) is not None:
            extra[key] = float(final[key])
    return {
        "auc": metric("auc"),
        "ks": metric("ks"),
        "rounds": rounds,
        "participants": participants,
        "epsilon": epsilon,
        "extra": extra,
    }


_PROMOTED = select(ModelVersion).where(ModelVersion.status == "promoted")  # built once: read per application


class Registry:
    """The model registry on one database; model files kept under `store` (default data dir)."""

    def __init__(self, engine: Engine | str | None = None, store: str | Path | None = None) -> None:
        self.engine = bank_engine(engine)
        self.store = Path(store) if store else data_dir() / "models"

    # -- reading -------------------------------------------------------------------------
    def get(self, version: str, session: Session | None = None) -> ModelVersion:
        if session is None:
            with session_scope(self.engine) as own:
                return self.get(version, own)
        row = session.get(ModelVersion, version)
        if row is None:
            known = session.scalars(select(ModelVersion.version).order_by(ModelVersion.number)).all()
            raise BankError(
                f"model version '{version}' is not registered (known: {', '.join(known) or 'none'})", "not_found"
            )
        return row

    def list(self) -> list[ModelVersion]:
        with session_scope(self.engine) as session:
            return list(session.scalars(select(ModelVersion).order_by(ModelVersion.number)))

    def promoted(self, session: Session | None = None) -> ModelVersion | None:
        if session is None:
            with session_scope(self.engine) as own:
                return self.promoted(own)
        return session.scalars(_PROMOTED).first()

    def resolve(self, version: str | None, session: Session | None = None) -> ModelVersion:
        """A named version, or the promoted one when `version` is empty (read in `session`
        when given)."""
        if version:
            return self.get(version, session)
        current = self.promoted(session)
        if current is None:
            raise BankError(
                "no model version is promoted; name one (e.g. --model v1) or run `yinqi bank promote VERSION`",
                "refused",
            )
        return current

    # -- writing -------------------------------------------------------------------------
    def register(self, model_dir: str | Path, *, anchor: bool = True) -> ModelVersion:
        """Register a model directory as the next version (the same model twice: same version).

        The version row, its files and (with `anchor`) its anchor leaf are written in one
        transaction: a failure or a crash in between leaves nothing, and registering the same
        model again queues a leaf that is missing (e.g. from before this was atomic).
        """
        from federation.model import load_model

        model_dir = Path(model_dir)
        loaded = load_model(model_dir)  # validates the directory and computes the content hash
        info = summarize_report(loaded.report)
        for _attempt in range(5):
            try:
                return self._register(model_dir, loaded.version_hash, info, anchor)
            except IntegrityError:  # another registration took the number (or this very hash)
                continue
        raise BankError("could not allocate a model version number; retry", "refused")  # pragma: no cover

    def register_hashed(
        self, model_dir: str | Path, sha256: str, info: dict[str, Any], *, anchor: bool = True
    ) -> ModelVersion:
        """Register a model directory whose content hash the caller computed (a vertical model:
        the hash binds the bank's top half to the platform's bottom half, which the bank never
        holds). `info` has `auc`, `ks`, `rounds`, `participants`, `epsilon`, `extra`. The same
        hash twice gives the same version (and re-queues its leaf if it went missing)."""
        for _attempt in range(5):
            try:
                return self._register(Path(model_dir), sha256, info, anchor)
            except IntegrityError:  # another registration took the number (or this very hash)
                continue
        raise BankError("could not allocate a model version number; retry", "refused")  # pragma: no cover

    def _register(self, model_dir: Path, sha256: str, info: dict[str, Any], anchor: bool) -> ModelVersion:
        with write_transaction(self.engine) as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.sha256 == sha256)).first()
            if row is None:
                row = self._insert(session, model_dir, sha256, info)
                faults.point(faults.MODEL_STORED)
            if anchor:
                row.anchor_leaf = AnchorOutbox(url_of(self.engine)).enqueue(
                    anchor_record(row.version, row.sha256), kind="model", ref=row.version, session=session
                )
            version = row.version
        return self.get(version)

    def _insert(self, session: Session, model_dir: Path, sha256: str, info: dict[str, Any]) -> ModelVersion:
        last = session.scalars(select(ModelVersion.number).order_by(ModelVersion.number.desc())).first()
        number = (last or 0) + 1
        version = f"v{number}"
        target = self.store / version
        row = ModelVersion(
            version=version,
            number=number,
            sha256=sha256,
            path=str(target.resolve()),
            status="candidate",
            auc=info["auc"],
            ks=info["ks"],
            rounds=info["rounds"],
            participants=info["participants"],
            epsilon=info["epsilon"],
            summary=info["extra"],
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()  # the unique number/hash is checked before files are copied
        if target.exists():  # left by a registration that died before its commit
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in MODEL_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, target / name)
        return row

    def anchor(self, version: str) -> ModelVersion:
        """Queue the version's hash on the anchoring outbox (idempotent)."""
        with write_transaction(self.engine) as session:
            row = session.get(ModelVersion, version)
            if row is None:
                raise BankError(f"model version '{version}' is not registered", "not_found")
            row.anchor_leaf = AnchorOutbox(url_of(self.engine)).enqueue(
                anchor_record(row.version, row.sha256), kind="model", ref=row.version, session=session
            )
        return self.get(version)

    def mark_promoted(self, session: Session, version: str, now: datetime) -> None:
        """In the caller's transaction: `version` becomes the promoted one, the previous retires."""
        for current in session.scalars(select(ModelVersion).where(ModelVersion.status == "promoted").with_for_update()):
            if current.version != version:
                current.status = "retired"
        row = session.get(ModelVersion, version)
        if row is None:
            raise BankError(f"model version '{version}' is not registered", "not_found")
        row.status = "promoted"
        row.promoted_at = now


def register_model(
    model_dir: str | Path, engine: Engine | str | None = None, store: str | Path | None = None
) -> ModelVersion:
    """Register a trained model directory (reads its report/meta; queues its hash for anchoring)."""
    return Registry(engine, store).register(model_dir)


def get(version: str, engine: Engine | str | None = None) -> ModelVersion:
    return Registry(engine).get(version)


def list_versions(engine: Engine | str | None = None) -> list[ModelVersion]:
    return Registry(engine).list()
