"""The bank's defences against a poisoning or broken platform, with SecAgg+ left intact.

Under SecAgg+ the bank sees only the sum of the platforms' updates, never one alone, and that
stays so. What it can do, and does:

- **Bounded contributions.** Every honest update is clipped to an L2 norm bound B (the
  ClientApp does it) and SecAgg+'s clipping range is set to B, so no platform's part of the sum
  exceeds B per coordinate. A weighted average of updates of norm ≤ B has norm ≤ B, so an
  aggregate above B (a platform that scaled its update, or sent NaN, which SecAgg+ turns into
  garbage) cannot come from honest platforms: `check_aggregate` refuses it, as it refuses a
  non-finite one.
- **The bank's own validation data** (optional): an aggregate that makes the bank's loss on its
  own labeled file clearly worse is refused too.
- **Finding who, without unmasking anyone.** After a refused aggregate, the next rounds each
  leave one platform out in turn (every round still a SecAgg+ sum over the others; one
  aggregate per round, so no two sums over the same updates can be subtracted). A platform is
  excluded once the last `exclude_after` aggregates it was part of all failed while an
  aggregate without it passed since: the failures follow it, not the federation.
- **Evaluation that one platform cannot inflate.** Each platform's score histograms give its
  own AUC; a platform whose AUC is far from the median of all platforms' (further than 0.15 and
  than 3 standard errors of its AUC) is flagged and left out of the federated AUC; histograms
  that do not count the rows the platform declared are flagged too. Flagged `exclude_after`
  evaluations in a row, it is excluded.

Every refusal, flag and exclusion is in the run report with its reason.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# An aggregate may exceed the bound by SecAgg+'s quantisation error only (2B / 2**22 per value).
NORM_SLACK = 1e-3
# Validation: refused when the bank's loss rises by more than this (absolute, and relative).
VALIDATION_SLACK = (0.02, 0.10)
# Evaluation: a platform's AUC is an outlier beyond this distance from the median (and 3 SE).
AUC_DEVIATION = 0.15


@dataclass
class AggregateCheck:
    """What the bank found about one round's aggregate update."""

    passed: bool
    reason: str | None = None
    norm: float | None = None
    validation_loss: float | None = None
    previous_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def update_norm(update: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.square(np.asarray(u, dtype=np.float64)).sum()) for u in update))


def check_aggregate(
    update: list[np.ndarray],
    bound: float,
    validation_loss: Callable[[list[np.ndarray]], float] | None = None,
    candidate: list[np.ndarray] | None = None,
    previous_loss: float | None = None,
) -> AggregateCheck:
    """Is this round's aggregate update one honest platforms could have produced?

    `update` is the weighted average of the platforms' updates; `candidate` the model it gives;
    `validation_loss(weights)` the bank's loss on its own file, `previous_loss` that of the
    current model.
    """
    if not all(np.isfinite(u).all() for u in update):
        return AggregateCheck(False, "the aggregate update is not finite (a platform sent NaN or infinity)")
    norm = update_norm(update)
    if norm > bound * (1 + NORM_SLACK):
        return AggregateCheck(
            False,
            f"the aggregate update has L2 norm {norm:.4g}, above the bound {bound:g} every platform's update is "
            "clipped to (a platform sent a scaled or corrupted update)",
            norm=norm,
        )
    if validation_loss is None or candidate is None or previous_loss is None:
        return AggregateCheck(True, norm=norm)
    loss = validation_loss(candidate)
    absolute, relative = VALIDATION_SLACK
    if not math.isfinite(loss) or loss > previous_loss + max(absolute, relative * previous_loss):
        return AggregateCheck(
            False,
            f"the aggregate makes the bank's validation loss worse: {loss:.4f} against {previous_loss:.4f}",
            norm=norm,
            validation_loss=loss,
            previous_loss=previous_loss,
        )
    return AggregateCheck(True, norm=norm, validation_loss=loss, previous_loss=previous_loss)


def auc_standard_error(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982): the standard error of an AUC from its class counts."""
    if positives < 1 or negatives < 1 or not math.isfinite(auc):
        return math.inf
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


@dataclass
class PlatformEvaluation:
    auc: float
    positives: int
    negatives: int
    rows_declared: int | None = None

    @property
    def standard_error(self) -> float:
        return auc_standard_error(self.auc, self.positives, self.negatives)


def evaluation_outliers(results: dict[str, PlatformEvaluation]) -> dict[str, str]:
    """Platforms whose evaluation cannot be trusted this round, with the reason."""
    flagged: dict[str, str] = {}
    for name, result in results.items():
        counted = result.positives + result.negatives
        if result.rows_declared is not None and counted != result.rows_declared:
            flagged[name] = f"its score histograms count {counted} rows, but it declared {result.rows_declared}"
    usable = [r.auc for n, r in results.items() if n not in flagged and math.isfinite(r.auc)]
    if len(usable) < 3:  # with two, neither can be told to be the odd one out
        return flagged
    median = statistics.median(usable)
    for name, result in results.items():
        if name in flagged or not math.isfinite(result.auc):
            continue
        allowed = max(AUC_DEVIATION, 3 * result.standard_error)
        if abs(result.auc - median) > allowed:
            flagged[name] = (
                f"its AUC on its own rows, {result.auc:.3f}, is {abs(result.auc - median):.3f} from the platforms' "
                f"median {median:.3f} (allowed {allowed:.3f}): its labels or scores disagree with the others'"
            )
    return flagged


@dataclass
class Guard:
    """Who takes part in each round, and who is excluded, from the checks' outcomes."""

    exclude_after: int = 2
    min_clients: int = 2
    excluded: dict[str, str] = field(default_factory=dict)
    failing: dict[str, list[int]] = field(default_factory=dict)  # platform -> failed rounds in a row
    passed_without: dict[str, int] = field(default_factory=dict)  # platform -> last round passed without it
    flags: dict[str, list[int]] = field(default_factory=dict)  # platform -> flagged evaluations in a row
    probes: list[str] = field(default_factory=list)  # platforms still to leave out, in order
    singles: dict[str, list[int]] = field(default_factory=dict)  # plain rounds: own update refused
    rejected_in_a_row: int = 0

    def choose(self, available: list[str]) -> tuple[list[str], str | None]:
        """This round's participants and the platform left out to probe (if any)."""
        candidates = [p for p in available if p not in self.excluded]
        while self.probes and self.probes[0] not in candidates:
            self.probes.pop(0)
        if self.probes and len(candidates) - 1 >= self.min_clients:
            left_out = self.probes[0]
            return [p for p in candidates if p != left_out], left_out
        return candidates, None

    def record_round(
        self, server_round: int, participants: list[str], left_out: str | None, passed: bool
    ) -> dict[str, str]:
        """Note the round's check; returns the platforms excluded now, with their reasons."""
        if passed:
            self.rejected_in_a_row = 0
            for name in participants:
                self.failing.pop(name, None)
            for name in self.failing:
                if name not in participants:
                    self.passed_without[name] = server_round
            self.probes = []  # the left-out platform stays under suspicion until its next round
        else:
            self.rejected_in_a_row += 1
            for name in participants:
                self.failing.setdefault(name, []).append(server_round)
            if left_out is not None and self.probes and self.probes[0] == left_out:
                self.probes.pop(0)
            elif not self.probes:
                # Probe the most suspicious first: longest failing streak, then evaluation flags.
                self.probes = sorted(
                    participants, key=lambda p: (-len(self.failing.get(p, [])), -len(self.flags.get(p, [])), p)
                )
        excluded: dict[str, str] = {}
        for name, rounds in list(self.failing.items()):
            cleared_by = self.passed_without.get(name)
            if len(rounds) >= self.exclude_after and cleared_by is not None and cleared_by > rounds[0]:
                excluded[name] = (
                    f"the aggregates it was part of failed the bank's checks in rounds "
                    f"{', '.join(map(str, rounds))}, while the aggregate without it passed in round {cleared_by}"
                )
        for name, reason in excluded.items():
            self._exclude(name, reason)
        return excluded

    def record_single(self, server_round: int, name: str, reason: str) -> dict[str, str]:
        """Without SecAgg+ the bank sees each update: one that fails is the platform's alone.
        Returns the platforms excluded now (failed `exclude_after` rounds in a row)."""
        rounds = self.singles.setdefault(name, [])
        if rounds and rounds[-1] < server_round - 1:
            rounds.clear()  # not in a row
        rounds.append(server_round)
        if len(rounds) < self.exclude_after:
            return {}
        excluded = {name: f"its update failed the bank's check in rounds {', '.join(map(str, rounds))}: {reason}"}
        self._exclude(name, excluded[name])
        return excluded

    def record_evaluation(self, server_round: int, flagged: dict[str, str], evaluated: list[str]) -> dict[str, str]:
        """Note the round's evaluation flags; returns the platforms excluded now."""
        excluded: dict[str, str] = {}
        for name in evaluated:
            if name in flagged:
                self.flags.setdefault(name, []).append(server_round)
                if len(self.flags[name]) >= self.exclude_after:
                    rounds = ", ".join(map(str, self.flags[name]))
                    excluded[name] = f"its evaluation was flagged in rounds {rounds}: {flagged[name]}"
            else:
                self.flags.pop(name, None)
        for name, reason in excluded.items():
            self._exclude(name, reason)
        return excluded

    def _exclude(self, name: str, reason: str) -> None:
        self.excluded[name] = reason
        self.failing.pop(name, None)
        self.flags.pop(name, None)
        self.probes = [p for p in self.probes if p != name]
