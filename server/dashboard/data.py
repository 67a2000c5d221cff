"""What each dashboard page shows, read through the modules the CLI uses (one source of truth).

Lending is `LocalBank.metrics` / `.applications` (what `yinqi bank metrics --json` and `yinqi bank
applications --json` print) plus the last review's limit changes; Models is the registry
(`yinqi bank models --json`) with each version's run report, anchor status and monitoring;
Receivables reads the chain through `contracts.receivables`; Leasing the IoT monitor's devices
and usage (`iot.store`) and the alerts the bank received (`server.alerts.store`); Anchoring the
bank's anchoring store (`contracts.outbox`). Every reader answers plain dicts (money in fen);
the HTML pages and the JSON API render the same dicts.

A deployment keeps everything in the bank's one database; the demo's parts each keep their own,
so each source may be pointed elsewhere (`Sources`). A source that is not configured or not
there yet shows as absent, never as zeros.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, func, select

from federation.errors import YinqiError

SEED_TURNAROUND_SECONDS = 7 * 86400  # the seed's case: 7 days from invoice to money
GOAL_TURNAROUND_SECONDS = 2 * 3600  # its goal: 2 hours
PAGES = ("lending", "models", "receivables", "leasing", "anchoring")
RECEIVABLE_STATES = ("Created", "FinancingRequested", "Approved", "Financed", "Repaid", "Defaulted", "Rejected")


class DashboardError(YinqiError):
    """A dashboard request that cannot be answered (unknown page, bad lookup)."""


class Fleet(Protocol):
    """The leased equipment as the IoT monitor's store knows it (positions, usage, rent, the
    geofence): the bank does not import the monitor's side, the caller hands it over
    (`yinqi.dashboard_fleet.MonitorFleet` reads the monitor's store)."""

    def devices(self, raised: set[str]) -> list[dict[str, Any]]: ...

    def geofence(self) -> dict[str, Any]: ...

    def stamp(self) -> str: ...


@dataclass(frozen=True)
class Sources:
    """Where the dashboard reads from. `db` is the bank's database (lending, models, monitoring);
    `alerts_db` and `anchor_db` default to it; `fleet` the IoT monitor's view of the devices
    (positions and usage; none: the Leasing page shows the alerts only); `chain` reads
    receivables from the configured chain (`yinqi chain`'s)."""

    db: str | None = None
    models_dir: Path | None = None
    alerts_db: str | None = None
    anchor_db: str | None = None
    fleet: Fleet | None = None
    chain: bool = False


def _plain(value: Any) -> Any:
    """Chain values as people read them: a bytes32 label as its text, other bytes as 0x hex."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).rstrip(b"\0")
        try:
            decoded = text.decode()
        except UnicodeDecodeError:
            decoded = ""
        return decoded if decoded and decoded.isprintable() else "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(_plain(value), default=str))


class DashboardData:
    """The readers behind the pages; opened once per dashboard process, safe across threads."""

    def __init__(self, sources: Sources) -> None:
        from server.client import LocalBank

        self.sources = sources
        self.bank = LocalBank(sources.db, sources.models_dir)
        self.engine: Engine = self.bank.registry.engine
        self._lock = threading.Lock()
        self._alerts_engine = self._engine_for(sources.alerts_db)
        self._anchor_engine = self._engine_for(sources.anchor_db)
        self._chain: Any = None
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()

    def _engine_for(self, url: str | None) -> Engine:
        if url is None:
            return self.engine
        from server.db import bank_engine

        return bank_engine(url)

    # -- lending ---------------------------------------------------------------------------
    def lending(self, months: int = 12) -> dict[str, Any]:
        """The loan book: `metrics` exactly as `yinqi bank metrics --json` prints it, the latest
        decisions with their reasons, and the limit changes of the last review."""
        metrics = self.bank.metrics(None, months)
        return {
            "metrics": metrics,
            "latest": self.bank.applications(None, None, None, 10),
            "last_review": self.last_review(),
        }

    def last_review(self, limit: int = 10) -> dict[str, Any]:
        from federation.storage import session_scope
        from server.loanbook import wording
        from server.loanbook.changes import LimitChange

        with session_scope(self.engine) as session:
            month = session.scalar(select(func.max(LimitChange.review_month)).where(LimitChange.kind == "review"))
            if month is None:
                return {"month": None, "counts": {}, "changes": []}
            counts = dict(
                session.execute(
                    select(LimitChange.action, func.count())
                    .where(LimitChange.kind == "review", LimitChange.review_month == month)
                    .group_by(LimitChange.action)
                ).all()
            )
            rows = session.scalars(
                select(LimitChange)
                .where(
                    LimitChange.kind == "review",
                    LimitChange.review_month == month,
                    LimitChange.action.in_(("raise", "cut")),
                )
                .order_by(LimitChange.id)
                .limit(limit)
            ).all()
            changes = [
                {
                    "account_id": r.account_id,
                    "merchant_id": r.merchant_id,
                    "action": r.action,
                    "old_limit_fen": r.old_limit_fen,
                    "new_limit_fen": r.new_limit_fen,
                    "band": r.band,
                    "pd": r.pd,
                    "reasons": wording.as_read(r.reasons),
                }
                for r in rows
            ]
        return {"month": month, "counts": {k: int(v) for k, v in counts.items()}, "changes": changes}

    # -- models ----------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        """Every registered version (`yinqi bank models --json`'s rows) with its run's rounds,
        refusals, privacy audit (when the run wrote one), anchor status, and the monitoring."""
        from contracts.outbox import AnchorBatch, AnchorLeaf
        from federation.storage import session_scope
        from server.monitoring import stored

        versions = []
        for row in self.bank.registry.list():
            entry = row.to_dict()
            entry["report"] = self._run_of(Path(row.path))
            entry["anchor"] = None
            if row.anchor_leaf:
                with session_scope(self._anchor_engine) as s:
                    leaf = s.scalars(select(AnchorLeaf).where(AnchorLeaf.leaf == row.anchor_leaf)).first()
                    batch = s.get(AnchorBatch, leaf.batch_id) if leaf and leaf.batch_id else None
                    entry["anchor"] = {
                        "leaf": row.anchor_leaf,
                        "anchored": bool(leaf and leaf.proof_json),
                        "tx_hash": batch.tx_hash if batch else None,
                        "block": batch.block if batch else None,
                    }
            versions.append(_jsonable(entry))
        rows = stored(self.engine)
        latest = max((r.month for r in rows), default=None)
        return {
            "versions": versions,
            "monitoring_month": latest,
            "monitoring": _jsonable([r.to_dict() for r in rows if r.month == latest]),
            "drift_alerts": _jsonable([r.to_dict() for r in rows if r.alert]),
        }

    @staticmethod
    def _run_of(model_dir: Path) -> dict[str, Any] | None:
        """Per-round metrics, ε per platform, refusals and the privacy audit of a model's run."""
        try:
            report = json.loads((model_dir / "report.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(report, dict):
            return None
        rounds = [
            {
                "round": r.get("round"),
                "auc": r.get("federated_auc"),
                "ks": r.get("federated_ks"),
                "participants": r.get("participants") or [],
                "refused": r.get("refused") or {},
                "dropped": r.get("dropped") or [],
                "epsilon": {c.get("platform"): c.get("epsilon") for c in r.get("clients") or [] if isinstance(c, dict)},
            }
            for r in report.get("rounds") or []
            if isinstance(r, dict)
        ]
        audit = None
        for name in ("privacy_audit.json", "audit.json"):
            path = model_dir / name
            if path.is_file():
                try:
                    audit = json.loads(path.read_text())
                except ValueError:
                    audit = {"error": f"{path.name} is not valid JSON"}
                break
        return {
            "status": report.get("status"),
            "engine": report.get("engine"),
            "rounds": rounds,
            "epsilon": report.get("epsilon") or {},
            "refused": report.get("refused") or {},
            "final": report.get("final") or {},
            "audit": audit,
        }

    # -- receivables -----------------------------------------------------------------------
    def _open_chain(self) -> Any:
        if self._chain is None:
            from contracts.client import open_chain

            self._chain = open_chain(deploy=False)
        return self._chain

    def receivables(self) -> dict[str, Any]:
        """The pipeline by state, financing turnaround against the seed's case, latest events."""
        if not self.sources.chain:
            return {"available": False, "why": "no chain configured (start the dashboard with --chain)"}
        from contracts import receivables as rv

        with self._lock:  # one embedded chain object, replayed from its journal
            try:
                chain = self._open_chain()
                events = rv.events(chain)
            except YinqiError as exc:
                return {"available": False, "why": str(exc)}
            ids = sorted(
                {int(e["args"]["id"]) for e in events if e["event"] == "ReceivableCreated"}
                | {int(e["args"]["childId"]) for e in events if e["event"] == "Split"}
            )
            receivables = [rv.get(chain, i) for i in ids]
            kinds = [e["event"] for e in events]
        states = dict.fromkeys(RECEIVABLE_STATES, 0)
        for r in receivables:
            states[r.state] = states.get(r.state, 0) + 1
        turnarounds = sorted(t for r in receivables if (t := r.turnaround_seconds) is not None)
        return {
            "available": True,
            "count": len(receivables),
            "states": states,
            "transfers": sum(k in ("Transferred", "ReceivableTransferred") for k in kinds),
            "splits": sum(k in ("Split", "ReceivableSplit") for k in kinds),
            "turnaround": {
                "funded": len(turnarounds),
                "median_seconds": statistics.median(turnarounds) if turnarounds else None,
                "seconds": turnarounds,
                "seed_seconds": SEED_TURNAROUND_SECONDS,
                "goal_seconds": GOAL_TURNAROUND_SECONDS,
            },
            "receivables": [_jsonable(r.as_dict()) for r in receivables[-20:]],
            "events": [_jsonable(e) for e in events[-20:]][::-1],
        }

    # -- leasing ---------------------------------------------------------------------------
    def leasing(self) -> dict[str, Any]:
        """Devices where they last reported with their open alerts (from the fleet, when given),
        the alert timeline the bank received, and each device's latest month of use and rent."""
        from server.alerts.store import AlertStore

        alerts = [_alert_dict(a) for a in AlertStore(self._alerts_engine).list()]
        raised = {a["device_id"] for a in alerts if a["state"] == "raised"}
        fleet = self.sources.fleet
        return {
            "alerts": sorted(alerts, key=lambda a: a["raised_at"], reverse=True),
            "available": fleet is not None,
            "geofence": fleet.geofence() if fleet is not None else None,
            "devices": fleet.devices(raised) if fleet is not None else [],
        }

    # -- anchoring -------------------------------------------------------------------------
    def anchoring(self) -> dict[str, Any]:
        """Records queued vs anchored by kind, and the last anchor transactions."""
        from contracts.outbox import AnchorBatch, AnchorLeaf
        from federation.storage import session_scope

        with session_scope(self._anchor_engine) as s:
            rows = s.execute(
                select(AnchorLeaf.kind, AnchorLeaf.proof_json.is_not(None), func.count()).group_by(
                    AnchorLeaf.kind, AnchorLeaf.proof_json.is_not(None)
                )
            ).all()
            batches = s.scalars(
                select(AnchorBatch).where(AnchorBatch.tx_hash.is_not(None)).order_by(AnchorBatch.id.desc()).limit(10)
            ).all()
            last = [
                {
                    "id": b.id,
                    "kind": b.kind,
                    "leaves": b.leaf_count,
                    "root": b.root,
                    "tx_hash": b.tx_hash,
                    "block": b.block,
                    "status": b.status,
                }
                for b in batches
            ]
        kinds: dict[str, dict[str, int]] = {}
        for kind, anchored, count in rows:
            kinds.setdefault(kind, {"queued": 0, "anchored": 0})["anchored" if anchored else "queued"] += int(count)
        return {
            "kinds": dict(sorted(kinds.items())),
            "queued": sum(k["queued"] for k in kinds.values()),
            "anchored": sum(k["anchored"] for k in kinds.values()),
            "batches": last,
        }

    def proof(self, kind: str, ref: str) -> dict[str, Any] | None:
        """The proof of the latest anchored record with this kind and ref (`AnchorOutbox.proof_for`)."""
        from contracts.outbox import AnchorOutbox
        from federation.storage import url_of

        if not kind or not ref or len(kind) > 32 or len(ref) > 256:
            raise DashboardError("a proof lookup needs a kind (≤ 32 characters) and a ref (≤ 256 characters)")
        return AnchorOutbox(url_of(self._anchor_engine)).proof_for(kind, ref)

    # -- live updates and the page cache ----------------------------------------------------
    def stamp(self) -> str:
        """A digest that changes whenever any page's data changes: the newest row of each
        append-only table, counts of the few rows that change in place (promotions, alerts
        cleared, batches mined), the business date, the chain's height. Index lookups only."""
        from contracts.outbox import AnchorBatch, AnchorLeaf
        from federation.storage import session_scope
        from server.alerts.store import BankAlertRow
        from server.credit.accounts import Entry
        from server.loanbook.applications import Application
        from server.loanbook.changes import LimitChange
        from server.monitoring import MonitorRecord
        from server.registry import ModelVersion

        parts: list[Any] = []
        with session_scope(self.engine) as s:
            for column in (Application.id, Entry.id, LimitChange.id, MonitorRecord.id):
                parts.append(s.scalar(select(func.max(column))))
            parts.append(s.execute(select(func.max(ModelVersion.number), func.max(ModelVersion.promoted_at))).one())
            parts.append(s.scalar(select(func.count()).where(ModelVersion.status == "promoted")))
        with session_scope(self._alerts_engine) as s:
            parts.append(s.execute(select(func.count(), func.max(BankAlertRow.received_at))).one())
            parts.append(s.scalar(select(func.count()).where(BankAlertRow.state == "raised")))
        with session_scope(self._anchor_engine) as s:
            parts.append(s.scalar(select(func.max(AnchorLeaf.id))))
            parts.append(
                s.execute(select(func.max(AnchorBatch.id), func.count()).where(AnchorBatch.status == "mined")).one()
            )
        if self.sources.fleet is not None:
            parts.append(self.sources.fleet.stamp())
        if self.sources.chain:
            with self._lock:
                try:
                    chain = self._open_chain()
                    chain.sync()
                    parts.append(int(chain.w3.eth.block_number))
                except YinqiError as exc:
                    parts.append(str(exc))
        parts.append(self.bank.clock()["today"])
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]

    def page(self, name: str, stamp: str | None = None) -> tuple[dict[str, Any], str, bool]:
        """(the page's data, the stamp it was read at, whether it came from the cache): a page is
        read once per change of the data, then served from memory until the stamp moves."""
        if name not in PAGES:
            raise DashboardError(f"no page {name!r}; expected one of {', '.join(PAGES)}")
        stamp = stamp or self.stamp()
        with self._cache_lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == stamp:
                return hit[1], stamp, True
        data: dict[str, Any] = getattr(self, name)()
        with self._cache_lock:
            self._cache[name] = (stamp, data)
        return data, stamp, False

    def close(self) -> None:
        self.bank.close()


def _alert_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "device_id": row.device_id,
        "rule": row.rule,
        "severity": row.severity,
        "state": row.state,
        "raised_at": row.raised_at,
        "cleared_at": row.cleared_at,
        "lease_id": row.lease_id,
    }
