"""The lending policy's reason codes in plain English and Chinese (the model's own reasons are
worded by `federation.reasons`).

The wordings a monthly review keeps as facts (`federation.reasons.DeferredReason`) are
registered by name (`words`): rows stored with those names are worded by them when read, so a
name stays as long as such rows may be read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from federation.money import yuan
from federation.reasons import DeferredReason, Reason, defer, stored_as_read, words


def _pd(value: float) -> tuple[str, str]:
    return f"{value * 100:.1f} %", f"{value * 100:.1f}%"


def decline_band(pd: float, lends_up_to: float) -> Reason:
    en, zh = _pd(pd)
    top_en, top_zh = _pd(lends_up_to)
    return Reason(
        "DECLINE_BAND",
        f"default probability {en} is above the {top_en} the bank lends up to",
        f"违约概率{zh}高于银行授信上限{top_zh}",
    )


def no_turnover(months: int) -> Reason:
    return Reason(
        "NO_TURNOVER",
        f"no turnover in the latest {months} months to base a limit on",
        f"近{months}个月无营业额，无法核定额度",
    )


def limit_turnover(multiple_pct: int, turnover_fen: int, months: int, band: str, pd: float) -> Reason:
    en, zh = _pd(pd)
    return Reason(
        "LIMIT_TURNOVER",
        f"limit is {multiple_pct} % of the average monthly turnover of {yuan(turnover_fen)} yuan over "
        f"{months} months (band {band}, default probability {en})",
        f"额度为近{months}个月月均营业额{yuan(turnover_fen)}元的{multiple_pct}%（{band}档，违约概率{zh}）",
    )


def limit_cap(max_fen: int) -> Reason:
    return Reason(
        "LIMIT_CAP",
        f"limit capped at the bank's maximum of {yuan(max_fen)} yuan",
        f"额度以银行上限{yuan(max_fen)}元封顶",
    )


def refer_pd(pd: float, threshold: float) -> Reason:
    en, zh = _pd(pd)
    t_en, t_zh = _pd(threshold)
    return Reason(
        "REFER_PD",
        f"default probability {en} is {t_en} or more: a credit officer decides",
        f"违约概率{zh}不低于{t_zh}，转人工审批",
    )


def refer_limit(limit_fen: int, threshold_fen: int) -> Reason:
    return Reason(
        "REFER_LIMIT",
        f"a limit of {yuan(limit_fen)} yuan needs a credit officer (from {yuan(threshold_fen)} yuan)",
        f"额度{yuan(limit_fen)}元达到人工审批标准（{yuan(threshold_fen)}元起）",
    )


def referred_frozen() -> Reason:
    return Reason(
        "REFERRED",
        "referred to a credit officer: no draws until an operator lifts the hold",
        "已转人工审批：在操作员解除前不可支用",
    )


@words("raise_capped")
def raise_capped(max_raise_pct: int, target_fen: int) -> Reason:
    return Reason(
        "RAISE_CAPPED",
        f"a review raises a limit by at most {max_raise_pct} % (the policy's limit is {yuan(target_fen)} yuan)",
        f"单次复审提额不超过{max_raise_pct}%（政策额度{yuan(target_fen)}元）",
    )


@words("cut_held_at_drawn")
def cut_held_at_drawn(principal_fen: int, target_fen: int) -> Reason:
    return Reason(
        "CUT_HELD_AT_DRAWN",
        f"limit not cut below the {yuan(principal_fen)} yuan already drawn (the policy's limit is {yuan(target_fen)} yuan)",
        f"额度不低于已支用的{yuan(principal_fen)}元（政策额度{yuan(target_fen)}元）",
    )


@words("draws_frozen")
def draws_frozen() -> Reason:
    return Reason(
        "DRAWS_FROZEN",
        "new draws frozen until a later review keeps or raises the limit",
        "冻结新增支用，直至后续复审维持或提高额度",
    )


def overdue_no_raise(days: int) -> Reason:
    return Reason(
        "OVERDUE_NO_RAISE", f"no raise while a draw is {days} days past due", f"存在逾期{days}天的借款，不予提额"
    )


def change_too_small(min_change_pct: int) -> Reason:
    return Reason(
        "CHANGE_TOO_SMALL",
        f"the policy's limit differs by less than {min_change_pct} %: limit kept",
        f"政策额度变动不足{min_change_pct}%，维持原额度",
    )


def turnover_code(old_fen: int, new_fen: int) -> str:
    return "TURNOVER_" + ("UP" if new_fen > old_fen else "DOWN")


@words("turnover_moved")
def turnover_moved(old_fen: int, new_fen: int, months: int) -> Reason:
    way_en, way_zh = ("rose", "上升") if new_fen > old_fen else ("fell", "下降")
    return Reason(
        turnover_code(old_fen, new_fen),
        f"average monthly turnover over {months} months {way_en} from {yuan(old_fen)} to {yuan(new_fen)} yuan",
        f"近{months}个月月均营业额由{yuan(old_fen)}元{way_zh}至{yuan(new_fen)}元",
    )


@words("band_moved")
def band_moved(old_band: str, new_band: str, old_pd: float, new_pd: float) -> Reason:
    o_en, o_zh = _pd(old_pd)
    n_en, n_zh = _pd(new_pd)
    return Reason(
        "BAND_CHANGE",
        f"risk band {old_band} → {new_band} (default probability {o_en} → {n_en})",
        f"风险等级由{old_band}调整为{new_band}（违约概率{o_zh}→{n_zh}）",
    )


def no_consent() -> Reason:
    return Reason(
        "NO_CONSENT",
        "the merchant has withdrawn consent: not re-scored, limit kept",
        "商户已撤回授权：不重新评分，维持原额度",
    )


def no_features(month: str, latest: str) -> Reason:
    return Reason(
        "NO_FEATURES",
        f"its platform reported no features for {month} (latest: {latest or 'none'}): limit kept",
        f"平台未报送{month}的经营数据（最新：{latest or '无'}）：维持原额度",
    )


def not_scored(message: str) -> Reason:
    return Reason("NOT_SCORED", f"not scored ({message}): limit kept", f"无法评分（{message}）：维持原额度")


def as_read(stored: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Stored reasons, worded (`federation.reasons.stored_as_read`) by the wordings registered
    here and in `federation.reasons`: what a limit record's reader shows."""
    return stored_as_read(stored)


# -- kept as facts by the monthly review (`DeferredReason`): worded when read ------------------
def raise_capped_later(max_raise_pct: int, target_fen: int) -> DeferredReason:
    return defer(raise_capped, "RAISE_CAPPED", max_raise_pct, target_fen)


def cut_held_at_drawn_later(principal_fen: int, target_fen: int) -> DeferredReason:
    return defer(cut_held_at_drawn, "CUT_HELD_AT_DRAWN", principal_fen, target_fen)


@lru_cache(maxsize=1)
def draws_frozen_later() -> DeferredReason:
    """One for every cut line: it has no facts of its own."""
    return defer(draws_frozen, "DRAWS_FROZEN")


def turnover_moved_later(old_fen: int, new_fen: int, months: int) -> DeferredReason:
    return defer(turnover_moved, turnover_code(old_fen, new_fen), old_fen, new_fen, months)


def band_moved_later(old_band: str, new_band: str, old_pd: float, new_pd: float) -> DeferredReason:
    return defer(band_moved, "BAND_CHANGE", old_band, new_band, old_pd, new_pd)
