"""Reason codes in words a merchant understands, in English and Chinese.

A `Reason` names what moved a credit decision: a model feature (with the log-odds it added,
`federation.explain`) or a rule of the lending policy. The feature texts are built from the
merchant's own feature rows (oldest first, as `yinqi features` builds them) and the training
population's averages, e.g. "turnover fell 35 % over 3 months" / "近3个月营业额下降35%".

A reason can also be kept as its facts, a `DeferredReason`: the name of a wording function
registered with `words` and the arguments it takes. It is worded only when read
(`from_stored`). A monthly review gives most of its 100,000 lines several reasons. Wording each
in two languages cost more than deciding them, and the words took about three times the space
of the facts in the bank's database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from federation.money import yuan

FEATURE_CODES = {
    "amount": "TURNOVER",
    "growth": "SALES_GROWTH",
    "avg_rating": "RATING",
    "inventory_turnover": "INVENTORY_TURNOVER",
    "count": "ORDERS",
    "past_defaults": "PAST_DEFAULTS",
    "first_month": "NEW_MERCHANT",
    "category": "CATEGORY",
}
ONE_FEN = 0.01  # yuan: a smaller starting turnover gives no trend (no base for a percentage)
TREND_MONTHS = 3  # "turnover fell 35 % over 3 months": the newest month against 3 months before
TREND_SHOWN = 0.10  # a turnover change smaller than this is described by its level instead


@dataclass(frozen=True)
class Reason:
    """One reason behind a decision.

    `contribution` is the log-odds the feature added to the default score against the reference
    merchant (positive: riskier); 0 for a policy rule, whose `feature` is empty.
    """

    code: str
    text_en: str
    text_zh: str
    feature: str = ""
    contribution: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        # by hand: `dataclasses.asdict` deep-copies, and a review writes several per line
        return {
            "code": self.code,
            "text_en": self.text_en,
            "text_zh": self.text_zh,
            "feature": self.feature,
            "contribution": self.contribution,
        }

    def to_stored(self) -> dict[str, Any]:
        """As stored: worded (`DeferredReason.to_stored` keeps the facts instead)."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reason:
        return cls(
            code=str(data["code"]),
            text_en=str(data["text_en"]),
            text_zh=str(data["text_zh"]),
            feature=str(data.get("feature", "")),
            contribution=float(data.get("contribution", 0.0)),
        )


Wording = Callable[..., Reason]
_WORDINGS: dict[str, Wording] = {}
_NAMES: dict[Wording, str] = {}


def words(name: str) -> Callable[[Wording], Wording]:
    """Register a wording function under `name`, the name a `DeferredReason` stores. A name is
    part of the stored data: it stays as long as rows that name it may be read."""

    def register(function: Wording) -> Wording:
        if _WORDINGS.setdefault(name, function) is not function:
            raise ValueError(f"wording {name!r} is registered already")
        _NAMES[function] = name
        return function

    return register


class DeferredReason:
    """A reason kept as its facts: the registered wording (`words`) and its arguments, which
    must be JSON values. It is worded when something reads its text. A review stores most
    reasons with `to_stored`, unworded. A model feature's reason (`feature` set) is worded by
    `wording(feature, contribution, *args)`, so that neither is stored twice."""

    __slots__ = ("_worded", "args", "code", "contribution", "feature", "words")

    def __init__(self, code: str, words: str, args: Sequence[Any], feature: str = "", contribution: float = 0.0):
        self.code, self.words, self.args = code, words, tuple(args)
        self.feature, self.contribution = feature, contribution
        self._worded: Reason | None = None

    @property
    def reason(self) -> Reason:
        """The reason in words (worded once)."""
        if self._worded is None:
            self._worded = _worded(self.code, self.words, self.args, self.feature, self.contribution)
        return self._worded

    @property
    def text_en(self) -> str:
        return self.reason.text_en

    @property
    def text_zh(self) -> str:
        return self.reason.text_zh

    def to_dict(self) -> dict[str, Any]:
        return self.reason.to_dict()

    def to_stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"code": self.code, "words": self.words, "args": list(self.args)}
        if self.feature:  # a policy rule's would be "" and 0.0, the defaults `from_stored` reads
            stored.update(feature=self.feature, contribution=self.contribution)
        return stored

    def __repr__(self) -> str:
        return f"DeferredReason({self.code!r}, {self.words!r}, {self.args!r})"


AnyReason = Reason | DeferredReason


def defer(wording: Wording, code: str, *args: Any) -> DeferredReason:
    """`wording(*args)`, a registered wording (`words`) whose reason has `code`, kept as its facts."""
    return DeferredReason(code, _NAMES[wording], args)


def _worded(code: str, name: str, args: Sequence[Any], feature: str, contribution: float) -> Reason:
    """A stored reason's words. One whose wording is unknown here, or refuses its arguments (a
    row edited by hand), is still shown: its code and facts, not an error."""
    wording = _WORDINGS.get(name)
    try:
        if wording is None:
            raise LookupError(name)
        worded = wording(feature, contribution, *args) if feature else wording(*args)
    except (LookupError, TypeError, ValueError, ArithmeticError):
        facts = ", ".join(map(str, args))
        return Reason(code, f"{code} ({facts})", f"{code}（{facts}）", feature, contribution)
    return Reason(code, worded.text_en, worded.text_zh, feature, contribution)


def from_stored(data: Mapping[str, Any]) -> Reason:
    """A reason as stored, in words: worded (`Reason.to_dict`) or as facts (`DeferredReason`)."""
    if "words" not in data:
        return Reason.from_dict(data)
    args = data.get("args")
    return _worded(
        str(data.get("code", "")),
        str(data["words"]),
        args if isinstance(args, list) else [],
        str(data.get("feature", "")),
        _number(data.get("contribution")) or 0.0,
    )


def stored_as_read(stored: Iterable[Any] | None) -> list[dict[str, Any]]:
    """Stored reasons (either form) as the worded dicts every reader shows; an entry that is
    not a reason at all (a row edited by hand) is shown as such, not dropped."""
    read = []
    for data in stored or ():
        if isinstance(data, Mapping):
            read.append(from_stored(data).to_dict())
        else:
            text = f"unreadable stored reason: {str(data)[:80]}"
            read.append(Reason("UNREADABLE", text, text).to_dict())
    return read


@lru_cache(maxsize=256)
def code_of(feature: str) -> str:
    """A feature's reason code (cached: a review words three features per changed line)."""
    known = FEATURE_CODES.get(feature)
    return known if known is not None else "FEATURE_" + "".join(c if c.isalnum() else "_" for c in feature.upper())


def _pct(fraction: float) -> str:
    return f"{abs(fraction) * 100:.0f}"


def _fen(amount: float) -> int:
    return round(float(amount) * 100)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def turnover_trend(rows: Sequence[Mapping[str, Any]]) -> tuple[float, int] | None:
    """(change of the newest month's amount against TREND_MONTHS months before, months), or None.

    None as well when there is no base to take a percentage of: a starting turnover under one
    fen (a change against it is noise, or overflows to infinity, which JSON cannot keep), or a
    change that is not a finite number."""
    amounts = [_number(r.get("amount")) for r in rows]
    if len(amounts) < 2 or amounts[-1] is None:
        return None
    back = max(0, len(amounts) - 1 - TREND_MONTHS)
    old = amounts[back]
    if old is None or not old >= ONE_FEN:
        return None
    change = amounts[-1] / old - 1.0
    if not math.isfinite(change):
        return None
    return change, len(amounts) - 1 - back


def feature_facts(feature: str, rows: Sequence[Mapping[str, Any]]) -> tuple[Any, list[float] | None]:
    """What a feature's words say of this merchant: its newest value as reported, and for the
    turnover its trend (`turnover_trend`, as [change, months]) or None."""
    raw = rows[-1].get(feature) if rows else None
    trend = turnover_trend(rows) if feature == "amount" else None
    return raw, None if trend is None else [trend[0], trend[1]]


def _describe(feature: str, raw: Any, mean: float | None, trend: Sequence[float] | None) -> tuple[str, str]:
    """(English, Chinese) facts about `feature` for this merchant, without a direction."""
    value = _number(raw)
    if feature == "category" or value is None:
        if feature == "category":
            return f"business category '{raw}'", f"经营类目「{raw}」"
        return f"{feature} = {raw}", f"{feature} = {raw}"
    above = mean is not None and value >= mean
    if feature == "amount":
        if trend is not None and abs(trend[0]) >= TREND_SHOWN:
            change, months = trend[0], int(trend[1])
            en_way, zh_way = ("fell", "下降") if change < 0 else ("rose", "上升")
            unit = "month" if months == 1 else "months"
            return (
                f"turnover {en_way} {_pct(change)} % over {months} {unit}",
                f"近{months}个月营业额{zh_way}{_pct(change)}%",
            )
        if mean is None:
            return f"monthly turnover {yuan(_fen(value))} yuan", f"月营业额{yuan(_fen(value))}元"
        return (
            f"monthly turnover {yuan(_fen(value))} yuan, {'above' if above else 'below'} the average "
            f"merchant's {yuan(_fen(mean))} yuan",
            f"月营业额{yuan(_fen(value))}元，{'高于' if above else '低于'}商户平均水平{yuan(_fen(mean))}元",
        )
    if feature == "growth":
        if abs(value) < 0.005:
            return "sales flat on the previous month", "销售额环比持平"
        en_way, zh_way = ("fell", "下降") if value < 0 else ("rose", "增长")
        return f"sales {en_way} {_pct(value)} % on the previous month", f"销售额环比{zh_way}{_pct(value)}%"
    if feature == "past_defaults":
        if value <= 0:
            return "no earlier month in default", "此前无违约记录"
        unit = "month" if value == 1 else "months"
        return f"{value:.0f} earlier {unit} in default", f"此前有{value:.0f}个月处于违约"
    if feature == "first_month":
        if value >= 0.5:
            return "no trading history before this month", "本月之前无交易记录"
        return "trades with a history of earlier months", "有此前月份的交易记录"
    if feature == "avg_rating":
        if mean is not None:
            return (
                f"average customer rating {value:.1f} of 5, {'above' if above else 'below'} the average {mean:.1f}",
                f"客户平均评分{value:.1f}分（满分5分），{'高于' if above else '低于'}平均{mean:.1f}分",
            )
        return f"average customer rating {value:.1f} of 5", f"客户平均评分{value:.1f}分（满分5分）"
    if feature == "inventory_turnover":
        if mean is not None:
            return (
                f"inventory turns over {value:.1f} times a month, {'faster' if above else 'slower'} than the "
                f"average {mean:.1f}",
                f"存货月周转{value:.1f}次，{'快于' if above else '慢于'}平均{mean:.1f}次",
            )
        return f"inventory turns over {value:.1f} times a month", f"存货月周转{value:.1f}次"
    if feature == "count":
        if mean is not None:
            return (
                f"{value:.0f} orders in the month, {'more' if above else 'fewer'} than the average {mean:.0f}",
                f"当月订单{value:.0f}笔，{'多于' if above else '少于'}平均{mean:.0f}笔",
            )
        return f"{value:.0f} orders in the month", f"当月订单{value:.0f}笔"
    return f"{feature} = {value:g}", f"{feature} = {value:g}"


def feature_reason(
    feature: str,
    contribution: float,
    rows: Sequence[Mapping[str, Any]],
    means: Mapping[str, float] | None = None,
) -> Reason:
    """The reason for a feature that added `contribution` log-odds, worded from the rows."""
    raw, trend = feature_facts(feature, rows)
    return feature_words(feature, contribution, raw, (means or {}).get(feature), trend)


def deferred_feature_reason(
    feature: str,
    contribution: float,
    rows: Sequence[Mapping[str, Any]],
    means: Mapping[str, float] | None = None,
) -> DeferredReason:
    """`feature_reason` kept as its facts (`DeferredReason`): worded when read."""
    raw, trend = feature_facts(feature, rows)
    mean = (means or {}).get(feature)
    contribution = float(contribution)
    args = (raw, None if mean is None else float(mean), trend)
    return DeferredReason(code_of(feature), "feature", args, feature, contribution)


@words("feature")
def feature_words(
    feature: str, contribution: float, raw: Any, mean: float | None, trend: Sequence[float] | None
) -> Reason:
    """A feature's reason from its facts (`feature_facts`) and the training population's mean."""
    en, zh = _describe(feature, raw, mean, trend)
    if contribution > 0:
        en, zh = f"{en} (raises the risk)", f"{zh}（推高风险）"
    elif contribution < 0:
        en, zh = f"{en} (lowers the risk)", f"{zh}（降低风险）"
    return Reason(code_of(feature), en, zh, feature, float(contribution))
