"""Scoring: a consented merchant's features + a named model version -> PD -> credit limit.

`Scorer.evaluate` is the computation (consent check, model, policy, each feature's contribution
from the model itself, `federation.explain`), `Scorer.record` stores the outcome as a `Decision`
(model version, inputs' sha256, the inputs themselves so a later model can re-score them).
`Scorer.score`/`score_batch` also store each as an application with its outcome and reason
codes (`server.loanbook.applications`). A request is the merchant's recent feature rows (one
per month, oldest first, or ordered by a `month` field): the newest row is scored, the latest
months' `amount` give the turnover.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import JSON, BigInteger, Engine, Float, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation import plausible
from federation.explain import attribute, reference_vector, top_features
from federation.features import FEATURE_LABEL, ID_COLUMNS
from federation.reasons import DeferredReason, Reason, deferred_feature_reason, feature_reason
from federation.storage import JsonText, UtcDateTime, insert_rows, session_scope, values_at
from server.consent import ConsentRegistry
from server.credit.errors import BankError
from server.credit.policy import CreditPolicy, LimitDecision
from server.db import BankBase, bank_engine
from server.loanbook.applications import Application
from server.loanbook.clock import Clock, month_of
from server.loanbook.decide import application_outcome
from server.registry import Registry

Row = dict[str, Any]
ConsentCheck = Callable[[Sequence[str]], np.ndarray]
ReadRows = Callable[[Session], Sequence[Row]]  # rows read in the caller's transaction (`FeatureStore.reader`)
MODEL_REASONS = 3  # features named per decision


@dataclass(frozen=True)
class Explainer:
    """What a model's reasons are worded against: the reference merchant (encoded), the
    training population's numeric means (raw units) and the architecture."""

    reference: np.ndarray
    means: dict[str, float]
    architecture: str

    @classmethod
    def of(cls, model: Any) -> Explainer:
        agreement = model.report.get("agreement") if isinstance(model.report, dict) else None
        stats = agreement.get("stats") if isinstance(agreement, dict) else None
        categorical = stats.get("categorical") if isinstance(stats, dict) else None
        return cls(
            reference_vector(model.encoder, categorical if isinstance(categorical, dict) else None),
            {column: float(mean) for column, (mean, _std) in model.encoder.numeric.items()},
            str(model.meta.get("architecture", "logistic")),
        )


class Decision(BankBase):
    """One credit decision: who, which model, which inputs, what came out."""

    __tablename__ = "bank_decisions"

    # No index by merchant or line: nothing looks decisions up by them (a merchant's are found
    # through its applications, a line's through its limit records and ledger), and a review
    # adds 100,000 rows a month in random merchant order, where each such index costs every
    # insert. One by time, which decisions are added in the order of: the monitoring reads a
    # month's (`server.monitoring`), not every decision ever made. An existing database keeps
    # the indexes it had (there are no migrations).
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(16))  # score | open | review | promotion
    account_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model_version: Mapped[str] = mapped_column(String(32))
    model_sha256: Mapped[str] = mapped_column(String(64))
    inputs_hash: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[list[Row]] = mapped_column(JSON)
    pd: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(32))
    turnover_fen: Mapped[int] = mapped_column(BigInteger)
    limit_fen: Mapped[int] = mapped_column(BigInteger)
    annual_rate_bp: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


@dataclass(frozen=True)
class Outcome:
    """A scored merchant before (or after, with `decision_id`) it is stored."""

    merchant_id: str
    model_version: str
    model_sha256: str
    pd: float
    band: str
    turnover_fen: int
    limit_fen: int
    annual_rate_bp: int
    inputs_hash: str
    inputs: tuple[Row, ...]
    decision_id: int | None = None
    outcome: str = ""  # approved | declined | referred (the application's outcome)
    reasons: tuple[Reason, ...] = ()  # policy reasons, then the model's top features
    contributions: dict[str, float] = field(default_factory=dict)  # log-odds per feature
    application_id: int | None = None
    # `inputs` as canonical JSON (`canonical_inputs`), where the scorer made it: stored as such
    inputs_text: str = field(default="", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("inputs")
        data.pop("inputs_text")
        data["reasons"] = [r.to_dict() for r in self.reasons]
        return data

    def decision_values(self, purpose: str, account_id: str | None, created_at: datetime) -> dict[str, Any]:
        """The `Decision` row this outcome is stored as (for bulk inserts: reviews, onboarding)."""
        return {
            "merchant_id": self.merchant_id,
            "purpose": purpose,
            "account_id": account_id,
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
            "inputs_hash": self.inputs_hash,
            "inputs": JsonText(self.inputs_text) if self.inputs_text else list(self.inputs),
            "pd": self.pd,
            "band": self.band,
            "turnover_fen": self.turnover_fen,
            "limit_fen": self.limit_fen,
            "annual_rate_bp": self.annual_rate_bp,
            "created_at": created_at,
        }

    def application_values(self, purpose: str, account_id: str | None, applied_at: datetime) -> dict[str, Any]:
        """The `Application` row of this (recorded) outcome, for bulk inserts."""
        return {
            "merchant_id": self.merchant_id,
            "month": month_of(applied_at.date()),
            "applied_at": applied_at,
            "purpose": purpose,
            "outcome": self.outcome,
            "decision_id": self.decision_id,
            "account_id": account_id,
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
            "inputs_hash": self.inputs_hash,
            "pd": self.pd,
            "band": self.band,
            "limit_fen": self.limit_fen,
            "annual_rate_bp": self.annual_rate_bp,
            "reasons": [r.to_dict() for r in self.reasons],
            "contributions": self.contributions,
        }


def _clean_value(where: str, name: str, value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        value = float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        value = float(value)  # one canonical form: the same inputs hash in-process and over gRPC
        problem = plausible.number_problem(name, value)
    elif isinstance(value, str):
        problem = plausible.text_problem(value)
    else:
        problem = f"has type {type(value).__name__}; expected a number or text"
    if problem:
        raise BankError(f"{where}: feature '{name}' {problem}")
    return value


def canonical_rows(merchant_id: str, rows: Sequence[Row]) -> tuple[Row, ...]:
    """Rows with plain JSON values, ordered by `month` when every row has one.

    Every value is checked (`federation.plausible`): finite, plausible numbers, short texts, few fields.
    """
    if not merchant_id or not str(merchant_id).strip():
        raise BankError("merchant id is empty")
    if len(str(merchant_id)) > 128 or not str(merchant_id).isprintable():
        raise BankError(f"merchant id of {len(str(merchant_id))} characters; expected at most 128 printable ones")
    if not rows:
        raise BankError(f"merchant '{merchant_id}': no feature rows to score")
    if len(rows) > plausible.MAX_MONTHS:
        raise BankError(
            f"merchant '{merchant_id}': {len(rows)} feature rows; expected at most {plausible.MAX_MONTHS} months"
        )
    clean = []
    for number, row in enumerate(rows, start=1):
        where = f"merchant '{merchant_id}', row {number}"
        if len(row) > plausible.MAX_FIELDS:
            raise BankError(f"{where}: {len(row)} fields; expected at most {plausible.MAX_FIELDS}")
        for key in row:
            if not str(key) or plausible.text_problem(str(key)):
                raise BankError(
                    f"{where}: a feature name of {len(str(key))} characters; expected 1 to {plausible.MAX_TEXT}"
                )
        clean.append({str(k): _clean_value(where, str(k), v) for k, v in row.items()})
    if all("month" in row for row in clean):
        clean.sort(key=lambda row: str(row["month"]))
    return tuple(clean)


def inputs_hash(merchant_id: str, rows: Sequence[Row]) -> str:
    """sha256 of the canonical JSON of (merchant id, rows): what a decision was made on.

    Canonical: orjson's compact UTF-8 with sorted keys (the rows are canonical already: plain
    floats and texts). orjson rather than the stdlib: a review hashes every line's inputs."""
    return canonical_inputs(merchant_id, rows)[0]


def canonical_inputs(merchant_id: str, rows: Sequence[Row]) -> tuple[str, JsonText]:
    """(`inputs_hash`, the rows' canonical JSON): the hash covers
    `{"merchant_id":<id>,"rows":<that JSON>}`, so a decision that stores that JSON as its
    inputs can be checked against its hash from the stored text alone."""
    text = orjson.dumps(list(rows), option=orjson.OPT_SORT_KEYS)
    payload = b'{"merchant_id":' + orjson.dumps(merchant_id) + b',"rows":' + text + b"}"
    return hashlib.sha256(payload).hexdigest(), JsonText(text.decode())


class Scorer:
    """Scores merchants with registered models under one credit policy.

    Parameters
    ----------
    engine:
        The bank's database (Engine or URL; default: the configured one).
    registry:
        Where model versions are looked up (default: a `Registry` on the same engine).
    policy:
        The credit-limit policy (default: `CreditPolicy.load()`).
    consent:
        `ids -> bool mask` of merchants that consented (default: what the platforms reported
        to this bank, `server.consent.ConsentRegistry`).
    """

    def __init__(
        self,
        engine: Engine | str | None = None,
        *,
        registry: Registry | None = None,
        policy: CreditPolicy | None = None,
        consent: ConsentCheck | None = None,
    ) -> None:
        self.engine = bank_engine(engine)
        self.registry = registry or Registry(self.engine)
        self.policy = policy or CreditPolicy.load()
        self.consent = consent
        self._consents = ConsentRegistry(self.engine)  # the default: what the platforms reported
        self.clock = Clock(self.engine)
        self._models: dict[str, Any] = {}
        self._explainers: dict[str, Explainer] = {}
        self._lock = threading.Lock()

    def model(self, version: str | None, session: Session | None = None) -> tuple[str, str, Any]:
        """(version, sha256, loaded model); files are re-hashed once per process on first use."""
        row = self.registry.resolve(version, session)
        with self._lock:
            cached = self._models.get(row.version)
            if cached is None:
                from federation.model import load_model

                loaded = load_model(row.path)
                if loaded.version_hash != row.sha256:
                    raise BankError(
                        f"model {row.version}: files at {row.path} hash to {loaded.version_hash[:12]}…, "
                        f"registered {row.sha256[:12]}…; refusing to score with a changed model",
                        "refused",
                    )
                cached = self._models[row.version] = loaded
                self._explainers[row.version] = Explainer.of(loaded)
        return row.version, row.sha256, cached

    def explainer(self, version: str | None) -> Explainer:
        name, _, _ = self.model(version)
        return self._explainers[name]

    def evaluate(
        self,
        requests: Sequence[tuple[str, Sequence[Row]]],
        version: str | None = None,
        *,
        explain: bool = True,
        checked: bool = False,
        consented: bool = False,
        session: Session | None = None,
    ) -> list[Outcome | BankError]:
        """Score many merchants with one model; per merchant an `Outcome` or the reason why not.

        Every outcome carries each feature's contribution (log-odds against the reference
        merchant, `federation.explain`); with `explain` also its outcome and reason codes in
        words. `checked`: the rows come from the bank's feature store, already checked and in
        canonical form. `consented`: the caller checked consent already (a review does, in bulk).
        `session`: where the model version and consent are read (default: a transaction each).
        """
        from federation.model import predict_proba_array

        name, sha256, model = self.model(version, session)
        explainer = self._explainers[name]
        prepared: list[tuple[str, tuple[Row, ...]] | BankError] = []
        for merchant_id, rows in requests:
            if checked:
                prepared.append((str(merchant_id), tuple(rows)))
                continue
            try:
                prepared.append((str(merchant_id), canonical_rows(str(merchant_id), rows)))
            except BankError as exc:
                prepared.append(exc)
        ids = [p[0] for p in prepared if not isinstance(p, BankError)]
        if consented:
            mask = iter(np.ones(len(ids), dtype=bool))
        elif not ids:
            mask = iter(())
        elif self.consent is not None:
            mask = iter(np.asarray(self.consent(ids), dtype=bool))
        else:
            mask = iter(self._consents.consented(ids, session))
        results: list[Outcome | BankError] = [None] * len(prepared)  # type: ignore[list-item]
        scorable: list[tuple[int, str, tuple[Row, ...]]] = []
        for i, item in enumerate(prepared):
            if isinstance(item, BankError):
                results[i] = item
            elif not next(mask):
                results[i] = BankError(
                    f"merchant '{item[0]}' has not consented (or has withdrawn consent) to credit scoring", "refused"
                )
            else:
                scorable.append((i, *item))
        columns = list(model.encoder.columns)
        required = set(columns)
        numeric = [c for c in columns if c in set(model.encoder.numeric)]
        pick_numbers = values_at(numeric) if numeric else None
        ready: list[tuple[int, str, tuple[Row, ...]]] = []
        frame_rows = []
        for i, merchant_id, rows in scorable:  # checked per merchant: one bad row fails only its merchant
            newest = rows[-1]
            if not required <= newest.keys():
                missing = next(c for c in columns if c not in newest)
                results[i] = BankError(
                    f"merchant '{merchant_id}': feature '{missing}' missing; model {name} expects {columns}"
                )
            elif pick_numbers and any(issubclass(t, str) for t in set(map(type, pick_numbers(newest)))):
                text = next(c for c in numeric if isinstance(newest[c], str))
                results[i] = BankError(
                    f"merchant '{merchant_id}': feature '{text}' is {newest[text]!r}; expected a number"
                )
            else:
                ready.append((i, merchant_id, rows))
                frame_rows.append(newest)  # the encoder reads the model's columns only
        scorable = ready
        if scorable:
            x = model.encoder.transform_records(frame_rows, file="<score request>")
            pds = predict_proba_array(model.model, x)
            attribution = attribute(model.model, explainer.architecture, model.encoder, x, explainer.reference)
            top = top_features(attribution.values, MODEL_REASONS) if explain else None
            limits = self._limits(scorable, pds)
            each_contributions = attribution.rows()
            for k, ((i, merchant_id, rows), limit) in enumerate(zip(scorable, limits, strict=True)):
                if isinstance(limit, BankError):
                    results[i] = limit
                    continue
                contributions = each_contributions[k]
                outcome = ""
                reasons: tuple[Reason, ...] = ()
                if top is not None:
                    outcome, policy_reasons = application_outcome(limit, self.policy)
                    reasons = policy_reasons + self.model_reasons(rows, contributions, explainer, top[k])
                hashed, inputs_text = canonical_inputs(merchant_id, rows)
                results[i] = Outcome(
                    merchant_id=merchant_id,
                    model_version=name,
                    model_sha256=sha256,
                    pd=limit.pd,
                    band=limit.band,
                    turnover_fen=limit.turnover_fen,
                    limit_fen=limit.limit_fen,
                    annual_rate_bp=limit.annual_rate_bp,
                    inputs_hash=hashed,
                    inputs=rows,
                    outcome=outcome,
                    reasons=reasons,
                    contributions=contributions,
                    inputs_text=inputs_text,
                )
        return results

    def _limits(
        self, scorable: Sequence[tuple[int, str, tuple[Row, ...]]], pds: np.ndarray
    ) -> list[LimitDecision | BankError]:
        """Each scored merchant's limit under the policy (`CreditPolicy.decide_many`), or why
        there is none: a row without a number for its month's turnover."""
        amounts: list[list[float]] = []
        refused: dict[int, BankError] = {}
        for k, (_, merchant_id, rows) in enumerate(scorable):
            try:
                listed = [float(r["amount"]) for r in rows if "amount" in r]
                if len(listed) != len(rows):
                    raise BankError(
                        f"merchant '{merchant_id}': every row needs 'amount' (monthly turnover) for the limit"
                    )
            except (BankError, ValueError, TypeError) as exc:
                refused[k] = exc if isinstance(exc, BankError) else BankError(f"merchant '{merchant_id}': {exc}")
                listed = []
            amounts.append(listed)
        decided = self.policy.decide_many(np.asarray(pds, np.float64).tolist(), amounts)
        for k, error in refused.items():
            decided[k] = error
        return decided

    @staticmethod
    def model_reasons(
        rows: Sequence[Row], contributions: dict[str, float], explainer: Explainer, chosen: Sequence[int]
    ) -> tuple[Reason, ...]:
        """The chosen features (indices into `contributions`' order) as worded reasons."""
        names = list(contributions)
        return tuple(feature_reason(names[j], contributions[names[j]], rows, explainer.means) for j in chosen if j >= 0)

    @staticmethod
    def model_reasons_later(
        rows: Sequence[Row], contributions: dict[str, float], explainer: Explainer, chosen: Sequence[int]
    ) -> tuple[DeferredReason, ...]:
        """`model_reasons` kept as their facts (`DeferredReason`): a review stores them unworded."""
        names = list(contributions)
        return tuple(
            deferred_feature_reason(names[j], contributions[names[j]], rows, explainer.means) for j in chosen if j >= 0
        )

    def limit_of(self, outcome: Outcome) -> LimitDecision:
        return LimitDecision(outcome.band, outcome.pd, outcome.turnover_fen, outcome.limit_fen, outcome.annual_rate_bp)

    @classmethod
    def record(
        cls,
        session: Session,
        outcome: Outcome,
        purpose: str,
        account_id: str | None,
        now: datetime,
    ) -> Outcome:
        """Store the decision in `session` (the caller's transaction), dated `now` (the bank's
        clock, which the caller read); returns it with its id."""
        return cls.record_many(session, [outcome], purpose, account_id, now)[0]

    @classmethod
    def record_many(
        cls,
        session: Session,
        outcomes: Sequence[Outcome],
        purpose: str,
        account_id: str | None,
        now: datetime,
    ) -> list[Outcome]:
        """Store several decisions in one executemany, dated `now`."""
        rows = [o.decision_values(purpose, account_id, now) for o in outcomes]
        ids = insert_rows(session, Decision, rows, ids=True, key="merchant_id")
        return [replace(o, decision_id=i) for o, i in zip(outcomes, ids, strict=True)]

    @staticmethod
    def record_applications(
        session: Session,
        outcomes: Sequence[Outcome],
        purpose: str,
        now: datetime,
        account_id: str | None = None,
    ) -> list[Outcome]:
        """Store each (already recorded) decision as an application; returns them with its id."""
        rows = [o.application_values(purpose, account_id, now) for o in outcomes]
        ids = insert_rows(session, Application, rows, ids=True, key="decision_id")
        return [replace(o, application_id=i) for o, i in zip(outcomes, ids, strict=True)]

    def score(
        self,
        merchant_id: str,
        rows: Sequence[Row] | ReadRows,
        version: str | None = None,
        *,
        now: datetime | None = None,
    ) -> Outcome:
        """Score one merchant and store the decision and the application; `BankError` (nothing
        stored) if refused. `rows`: the merchant's rows, or how to read them in the same read
        transaction as the model version, consent and business date (`FeatureStore.reader`:
        the rows its platform reported, checked then)."""
        with session_scope(self.engine) as session:  # one read: rows, model version, consent, date
            if callable(rows):
                given, checked = rows(session), True
            else:
                given, checked = rows, False
            result = self.evaluate([(merchant_id, given)], version, session=session, checked=checked)[0]
            now = now or self.clock.now(session)
        if isinstance(result, BankError):
            raise result
        with session_scope(self.engine) as session:
            recorded = self.record(session, result, "score", None, now)
            return self.record_applications(session, [recorded], "score", now)[0]

    def score_batch(
        self, requests: Sequence[tuple[str, Sequence[Row]]], version: str | None = None, *, now: datetime | None = None
    ) -> list[Outcome | BankError]:
        """Score many merchants; decisions and applications of the scored ones stored in one
        transaction."""
        results = self.evaluate(requests, version)
        scored = [r for r in results if not isinstance(r, BankError)]
        now = now or self.clock.now()
        with session_scope(self.engine) as session:
            recorded = self.record_many(session, scored, "score", None, now) if scored else []
            stored = iter(self.record_applications(session, recorded, "score", now) if recorded else [])
        return [r if isinstance(r, BankError) else next(stored) for r in results]


def rows_from_frame(frame: Any, merchant_id: str | None = None) -> dict[str, list[Row]]:
    """A feature table (pandas) -> rows per merchant (label dropped, month kept for ordering)."""
    frame = frame.drop(columns=[c for c in (FEATURE_LABEL,) if c in frame.columns])
    if "merchant_id" not in frame.columns:
        if merchant_id is None:
            raise BankError("the feature table has no 'merchant_id' column; name the merchant")
        return {merchant_id: frame.to_dict(orient="records")}
    frame = frame.astype({"merchant_id": str})
    if merchant_id is not None:
        frame = frame[frame["merchant_id"] == str(merchant_id)]
        if frame.empty:
            raise BankError(f"merchant '{merchant_id}' has no rows in the feature table", "not_found")
    out: dict[str, list[Row]] = {}
    for mid, group in frame.groupby("merchant_id", sort=False):
        out[str(mid)] = group.drop(
            columns=[c for c in ID_COLUMNS if c not in ("month",) and c in group.columns]
        ).to_dict(orient="records")
    return out
