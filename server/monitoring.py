"""Model monitoring: does this month's population still look like the one the model learned from,
and do its PDs come true?

- **Stability.** For a model version and a month of the bank's clock: the PSI of the score and
  of every feature between the training population and the merchants the version scored that
  month (applications and reviewed lines, each merchant once, its latest decision). The training
  population is the federated run's aggregates in the model's `report.json` (`agreement`: the
  platforms' merged feature sketches and the last round's score histogram; no rows). Bins are
  groups of about equal training share (`federation.metrics.quantile_groups`).
- **Calibration.** Once outcomes exist: for the version's decisions on credit lines whose
  outcome window (`horizon_months`) has passed, predicted PD against observed default (a draw of
  the merchant reached the `default_tier` within the window), per band and overall, as a z-score.

Each result is a stored row (`bank_model_monitoring`, one per version, month and metric); an
alert is a row whose PSI exceeds `psi_alert` (with at least `min_population` merchants) or whose
|z| exceeds `calibration_z` (with at least `calibration_min` outcomes). `yinqi bank metrics`
shows the month's alerts; `yinqi bank monitor` shows every row.
"""

from __future__ import annotations

import calendar
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import JSON, Boolean, Engine, Float, Integer, String, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import utcnow
from federation.collector import collector_paused
from federation.metrics import calibration_z, grouped_counts, population_stability_index, quantile_groups
from federation.preprocess import bin_of
from federation.storage import UtcDateTime, in_batches, session_scope
from server.credit.rules import MonitoringRules
from server.db import BankBase
from server.loanbook import draws as draw_book

SCORE_BINS = 1000  # the federated evaluation's score histogram: equal bins on [0, 1]
SCORED = ("score", "open", "review")  # decisions that are the month's population
NEW_VALUE = "(not seen in training)"


class MonitorRecord(BankBase):
    """One monitoring result: a model version, a month, a metric."""

    __tablename__ = "bank_model_monitoring"
    __table_args__ = (UniqueConstraint("model_version", "month", "metric", name="uq_bank_monitoring"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_version: Mapped[str] = mapped_column(String(32), index=True)
    month: Mapped[str] = mapped_column(String(7), index=True)
    metric: Mapped[str] = mapped_column(String(96))  # psi:score | psi:<feature> | calibration:<band|all>
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    population: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))  # stable | watch | alert | too few | n/a | ok
    alert: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class MonitorRow:
    model_version: str
    month: str
    metric: str
    value: float | None
    population: int
    level: str
    alert: bool
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, r: MonitorRecord) -> MonitorRow:
        return cls(r.model_version, r.month, r.metric, r.value, r.population, r.level, r.alert, dict(r.detail or {}))


# -- the training population from a run report -----------------------------------------------
@dataclass(frozen=True)
class TrainingPopulation:
    """What the federated run's report says about the population it trained on."""

    rows: int
    numeric: dict[str, dict[int, float]]  # column -> sketch bin -> count
    categorical: dict[str, dict[str, int]]
    scores: np.ndarray | None  # counts over SCORE_BINS equal bins of [0, 1]

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> TrainingPopulation | None:
        agreement = report.get("agreement") if isinstance(report, dict) else None
        stats = agreement.get("stats") if isinstance(agreement, dict) else None
        if not isinstance(stats, dict):
            return None
        try:
            numeric = {
                str(c): {int(b): float(m[0]) for b, m in bins.items()} for c, bins in stats.get("numeric", {}).items()
            }
            categorical = {
                str(c): {str(v): int(n) for v, n in counts.items()}
                for c, counts in stats.get("categorical", {}).items()
            }
            scores = None
            raw = agreement.get("scores") if isinstance(agreement, dict) else None
            if isinstance(raw, dict) and int(raw.get("bins", 0)) == SCORE_BINS:
                scores = np.zeros(SCORE_BINS)
                for index, count in raw.get("counts", {}).items():
                    scores[int(index)] += float(count)
            return cls(int(stats.get("rows", 0)), numeric, categorical, scores)
        except (TypeError, ValueError, IndexError, AttributeError):
            return None


# -- PSI of one metric -----------------------------------------------------------------------
def psi_numeric(training: dict[int, float], values: np.ndarray, groups: int) -> tuple[float, list[float], list[float]]:
    """PSI of a numeric feature: training sketch bins merged into `groups` equal-share groups;
    the month's values go to the group of their sketch bin (beyond the ends: the end groups)."""
    order = np.array(sorted(training), dtype=np.int64)
    counts = np.array([training[int(b)] for b in order])
    group_of_bin = quantile_groups(counts, groups)
    expected = grouped_counts(counts, group_of_bin)
    position = np.clip(np.searchsorted(order, bin_of(np.asarray(values, dtype=np.float64)), side="right") - 1, 0, None)
    actual = np.bincount(group_of_bin[position], minlength=len(expected)).astype(np.float64)
    return population_stability_index(expected, actual), _shares(expected), _shares(actual)


def psi_categorical(training: dict[str, int], values: list[str]) -> tuple[float, list[float], list[float]]:
    """PSI over the categories seen in training, plus one bucket for values it never saw."""
    names = sorted(training)
    index = {name: i for i, name in enumerate(names)}
    expected = np.array([float(training[n]) for n in names] + [0.0])
    actual = np.zeros(len(names) + 1)
    for value, count in Counter(map(str, values)).items():
        actual[index.get(value, len(names))] += count
    if actual[-1] == 0:
        expected, actual = expected[:-1], actual[:-1]
    return population_stability_index(expected, actual), _shares(expected), _shares(actual)


def psi_scores(training: np.ndarray, pds: np.ndarray, groups: int) -> tuple[float, list[float], list[float]]:
    group_of_bin = quantile_groups(training, groups)
    expected = grouped_counts(training, group_of_bin)
    bins = np.clip((np.asarray(pds, dtype=np.float64) * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1)
    actual = np.bincount(group_of_bin[bins], minlength=len(expected)).astype(np.float64)
    return population_stability_index(expected, actual), _shares(expected), _shares(actual)


def _shares(counts: np.ndarray) -> list[float]:
    total = float(np.sum(counts))
    return [round(float(c) / total, 6) if total else 0.0 for c in counts]


def psi_level(value: float, population: int, rules: MonitoringRules) -> str:
    if population < rules.min_population:
        return "too few"
    if value > rules.psi_alert:
        return "alert"
    return "watch" if value > rules.psi_watch else "stable"


# -- the month's population ------------------------------------------------------------------
def month_bounds(month: str) -> tuple[datetime, datetime]:
    year, number = int(month[:4]), int(month[5:7])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True, eq=False)  # arrays: no element-wise ==
class Sample:
    """Scored merchants' newest rows as the PSI compares them, an entry per row: each numeric
    column's numbers (NaN where the row has none: missing, None or text), each categorical
    column's texts (None where it has none), the PDs and the decisions' ids.

    Columns, not rows: a review's processes each make theirs as they store their chunks
    (`of`), side by side, and hand over a few arrays; the monitoring then joins them
    (`joined`) rather than receiving every row and reading them one by one, alone, once the
    review is over."""

    ids: np.ndarray  # int64
    pds: np.ndarray  # float64
    numbers: dict[str, np.ndarray]  # column -> float64, NaN where none
    texts: dict[str, list[str | None]]

    @classmethod
    def of(
        cls,
        rows: Sequence[Mapping[str, Any]],
        pds: Sequence[float],
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        ids: Sequence[int] = (),
    ) -> Sample:
        """`rows` (with their `pds` and decision `ids`, or none) at the named columns."""
        if len(pds) != len(rows) or (len(ids) and len(ids) != len(rows)):
            raise ValueError(f"{len(rows)} rows, {len(pds)} PDs and {len(ids)} ids: expected one of each per row")
        matrix = numeric_matrix(rows, list(numeric))
        return cls(
            np.asarray(ids if len(ids) else np.full(len(rows), -1), dtype=np.int64),
            np.asarray(pds, dtype=np.float64),
            {column: matrix[:, k] for k, column in enumerate(numeric)},
            {column: [str(r[column]) if column in r else None for r in rows] for column in categorical},
        )

    @classmethod
    def joined(cls, samples: Sequence[Sample]) -> Sample:
        """One sample of every row of `samples` (which name the same columns)."""
        if not samples:
            return cls.of([], [])
        first = samples[0]
        return cls(
            np.concatenate([s.ids for s in samples]),
            np.concatenate([s.pds for s in samples]),
            {c: np.concatenate([s.numbers[c] for s in samples]) for c in first.numbers},
            {c: [t for s in samples for t in s.texts[c]] for c in first.texts},
        )

    def __len__(self) -> int:
        return len(self.pds)

    def take(self, positions: Sequence[int]) -> Sample:
        """The rows at `positions`."""
        at = np.asarray(positions, dtype=np.int64)
        return Sample(
            self.ids[at],
            self.pds[at],
            {c: v[at] for c, v in self.numbers.items()},
            {c: [v[k] for k in at.tolist()] for c, v in self.texts.items()},
        )

    def numbers_of(self, column: str) -> np.ndarray:
        """The rows' numbers in `column`, the rows without one left out."""
        values = self.numbers[column]
        return values[~np.isnan(values)]

    def texts_of(self, column: str) -> list[str]:
        """The rows' texts in `column`, the rows without one left out."""
        return [t for t in self.texts[column] if t is not None]


def numeric_matrix(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> np.ndarray:
    """`rows` at `columns` as a (rows, columns) float64 matrix, NaN where a row has no number
    (missing, None, or anything but a number: text is not converted). One pass through C when
    every row has every column as a number (a review's population: the feature store's
    checked rows, which are finite; `array('d')` refuses text and None rather than converting
    them), row by row otherwise."""
    if not rows or not columns:
        return np.zeros((len(rows), len(columns)))
    pick = itemgetter(*columns)
    try:
        flat = array("d", chain.from_iterable(map(pick, rows)) if len(columns) > 1 else map(pick, rows))
    except (KeyError, TypeError):
        return np.array(
            [[float(v) if isinstance(v := r.get(c), (int, float)) else np.nan for c in columns] for r in rows],
            dtype=np.float64,
        )
    return np.frombuffer(flat, dtype=np.float64).reshape(len(rows), len(columns))


def monitored_columns(training: TrainingPopulation | None) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) columns whose PSI `training` allows."""
    if training is None:
        return [], []
    return sorted(training.numeric), sorted(training.categorical)


def scored_population(
    session: Session,
    version: str,
    month: str,
    columns: tuple[Sequence[str], Sequence[str]] = ((), ()),
    known: Sample | None = None,
) -> Sample:
    """The newest feature row and PD of each merchant `version` scored in `month` (its latest
    decision), at `columns` (numeric, categorical).

    `known`: decisions the caller holds already (a review's own, at the same columns): those
    are not read back; the inputs of the others are read for each merchant's latest only.
    """
    from server.scoring import Decision

    start, end = month_bounds(month)
    scope = (
        Decision.model_version == version,
        Decision.purpose.in_(SCORED),
        Decision.created_at >= start,
        Decision.created_at < end,
    )
    read = session.connection().execute  # plain rows: none of the ORM's loading (200k rows a month)
    # each merchant's latest found by the database (GROUP BY, not a dict over the month), then
    # read whole (the collector paused, see `refresh`): half the time of a row at a time
    if session.get_bind().dialect.name == "sqlite":
        # SQLite gives a bare column of a max() query from the row max() picked (documented):
        # one pass (0.35 s over the bench's 300,000 decisions; 0.45 s looking the ids up again)
        newest = read(select(func.max(Decision.id), Decision.pd).where(*scope).group_by(Decision.merchant_id)).all()
    else:
        latest = select(func.max(Decision.id)).where(*scope).group_by(Decision.merchant_id).scalar_subquery()
        newest = read(select(Decision.id, Decision.pd).where(Decision.id.in_(latest))).all()
    held = {} if known is None else dict(zip(known.ids.tolist(), range(len(known)), strict=True))
    positions: list[int] = []
    wanted: dict[int, float] = {}
    for decision_id, pd in newest:  # the known first, in one pass; order is no matter to PSI
        at = held.get(decision_id)
        if at is None:
            wanted[decision_id] = pd
        else:
            positions.append(at)
    rows: list[dict[str, Any]] = []
    ids: list[int] = []
    for batch in in_batches(list(wanted)):
        query = select(Decision.id, Decision.inputs).where(Decision.id.in_(batch))
        for decision_id, inputs in read(query).all():
            if inputs:
                rows.append(inputs[-1])
                ids.append(decision_id)
    numeric, categorical = columns
    read_back = Sample.of(rows, [wanted[i] for i in ids], numeric, categorical, ids)
    return read_back if known is None else Sample.joined([known.take(positions), read_back])


def stability(
    version: str,
    month: str,
    training: TrainingPopulation,
    population: Sample,
    rules: MonitoringRules,
) -> list[MonitorRow]:
    """PSI of the score and of each feature the training population describes (`population`
    at `monitored_columns(training)`)."""
    n = len(population)
    found = []
    if training.scores is not None and training.scores.sum() > 0 and n:
        value, expected, actual = psi_scores(training.scores, population.pds, rules.groups)
        level = psi_level(value, n, rules)
        detail = {"expected_share": expected, "actual_share": actual, "threshold": rules.psi_alert}
        found.append(MonitorRow(version, month, "psi:score", value, n, level, level == "alert", detail))
    for column, bins in sorted(training.numeric.items()):
        values = population.numbers_of(column)
        if not len(values) or not bins:
            continue
        value, expected, actual = psi_numeric(bins, values, rules.groups)
        level = psi_level(value, len(values), rules)
        detail = {"expected_share": expected, "actual_share": actual, "threshold": rules.psi_alert}
        found.append(MonitorRow(version, month, f"psi:{column}", value, len(values), level, level == "alert", detail))
    for column, counts in sorted(training.categorical.items()):
        texts = population.texts_of(column)
        if not texts or not counts:
            continue
        value, expected, actual = psi_categorical(counts, texts)
        level = psi_level(value, len(texts), rules)
        detail = {"expected_share": expected, "actual_share": actual, "threshold": rules.psi_alert}
        found.append(MonitorRow(version, month, f"psi:{column}", value, len(texts), level, level == "alert", detail))
    return found


# -- calibration -----------------------------------------------------------------------------
def add_months(day: date, months: int) -> date:
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def calibration(
    session: Session, version: str, month: str, today: date, rules: MonitoringRules, classification: Any
) -> list[MonitorRow]:
    """Predicted PD against observed default, per band and overall, for `version`'s decisions on
    credit lines whose outcome window has ended by `today`.

    One observation per merchant and month (its first decision that month, by the bank's
    clock); a merchant already in default at the decision, or owing nothing during the window,
    is left out. Read in time order, the decisions' index on it finds them: the months within
    the window (most of a young bank's decisions) are not scanned.
    """
    from server.scoring import Decision

    cutoff = datetime.combine(add_months(today, -rules.horizon_months), datetime.min.time(), UTC)
    query = (
        select(Decision.merchant_id, Decision.pd, Decision.band, Decision.created_at)
        .where(
            Decision.model_version == version,
            Decision.purpose.in_(("open", "review")),
            Decision.created_at <= cutoff,
        )
        .order_by(Decision.created_at, Decision.id)
    )
    first: dict[tuple[str, str], tuple[float, str, date]] = {}
    for merchant, pd, band, at in session.connection().execute(query):  # plain rows, as above
        first.setdefault((merchant, at.strftime("%Y-%m")), (float(pd), band, at.date()))
    if not first:
        return []
    merchants = sorted({m for m, _ in first})
    draws: dict[str, list[Any]] = {}
    for chunk in in_batches(merchants):
        for d in session.scalars(select(draw_book.Draw).where(draw_book.Draw.merchant_id.in_(chunk))):
            draws.setdefault(d.merchant_id, []).append(d)
    by_band: dict[str, list[tuple[float, int]]] = {}
    for (merchant, _), (pd, band, decided) in first.items():
        end = add_months(decided, rules.horizon_months)
        owed = [
            d for d in draws.get(merchant, []) if d.drawn_on <= end and (d.settled_on is None or d.settled_on > decided)
        ]
        if not owed:
            continue
        days = [draw_book.reached(d.due_on, d.settled_on, rules.default_tier, classification) for d in owed]
        if any(day is not None and day <= decided for day in days):
            continue  # already in default when decided
        defaulted = int(any(day is not None and decided < day <= end for day in days))
        by_band.setdefault(band, []).append((pd, defaulted))
    found = []
    everything = [x for items in by_band.values() for x in items]
    for band, items in [*sorted(by_band.items()), ("all", everything)]:
        if not items:
            continue
        p = np.array([pd for pd, _ in items])
        y = np.array([d for _, d in items])
        n, expected, defaults, z = calibration_z(p, y)
        enough = n >= rules.calibration_min
        alert = enough and abs(z) > rules.calibration_z
        level = "too few" if not enough else "alert" if alert else "ok"
        detail = {
            "predicted_pd": float(p.mean()),
            "observed_rate": float(y.mean()),
            "expected_defaults": expected,
            "defaults": defaults,
            "threshold_z": rules.calibration_z,
            "horizon_months": rules.horizon_months,
        }
        found.append(MonitorRow(version, month, f"calibration:{band}", z, n, level, alert, detail))
    return found


# -- storing and reading ---------------------------------------------------------------------
@collector_paused()  # a month's decisions, read whole: see federation.collector
def refresh(
    engine: Engine,
    scorer: Any,
    version: str,
    month: str,
    today: date | None = None,
    known: Sample | None = None,
) -> list[MonitorRow]:
    """Compute and store `version`'s monitoring for `month` (replacing earlier results);
    `known` as in `scored_population`, at `monitored_columns` of the version's training."""
    rules = scorer.policy.monitoring
    name, _, model = scorer.model(version)
    today = today or scorer.clock.today()
    training = TrainingPopulation.from_report(model.report)
    with session_scope(engine) as session:
        population = scored_population(session, name, month, monitored_columns(training), known)
        if training is None:
            found = [
                MonitorRow(
                    name,
                    month,
                    "psi:score",
                    None,
                    len(population),
                    "n/a",
                    False,
                    {"why": f"model {name}'s report.json has no training-population aggregates (agreement)"},
                )
            ]
        else:
            found = stability(name, month, training, population, rules)
        found += calibration(session, name, month, today, rules, scorer.policy.classification)
        session.execute(delete(MonitorRecord).where(MonitorRecord.model_version == name, MonitorRecord.month == month))
        now = utcnow()
        session.add_all(
            MonitorRecord(
                model_version=r.model_version,
                month=r.month,
                metric=r.metric,
                value=r.value,
                population=r.population,
                level=r.level,
                alert=r.alert,
                detail=r.detail,
                computed_at=now,
            )
            for r in found
        )
    return found


def versions_scoring(engine: Engine, month: str) -> list[str]:
    """Model versions with decisions in `month`."""
    from server.scoring import Decision

    start, end = month_bounds(month)
    with session_scope(engine) as session:
        query = (
            select(Decision.model_version)
            .where(Decision.created_at >= start, Decision.created_at < end, Decision.purpose.in_(SCORED))
            .distinct()
        )
        return sorted(session.scalars(query))


def stored_in(
    session: Session, month: str | None = None, version: str | None = None, alerts_only: bool = False
) -> list[MonitorRow]:
    """The stored results (in the caller's session), by month, version and metric."""
    query = select(MonitorRecord).order_by(MonitorRecord.month, MonitorRecord.model_version, MonitorRecord.metric)
    if month:
        query = query.where(MonitorRecord.month == month)
    if version:
        query = query.where(MonitorRecord.model_version == version)
    if alerts_only:
        query = query.where(MonitorRecord.alert.is_(True))
    return [MonitorRow.of(r) for r in session.scalars(query)]


def stored(
    engine: Engine, month: str | None = None, version: str | None = None, alerts_only: bool = False
) -> list[MonitorRow]:
    with session_scope(engine) as session:
        return stored_in(session, month, version, alerts_only)
