"""Synthetic platform data for demos, tests and benchmarks.

Each platform gets one raw CSV of transactions (merchant_id, date, amount, rating,
inventory_turnover, category, default), non-IID across platforms: they differ in size, in
merchant category mix and in default rate. Defaults are driven by the merchant-month features
(falling sales, poor ratings, slow inventory) plus unobserved noise, a few percent overall.
A held-out `test.csv` holds merchants no platform trains on.

`generate_book_year` makes a loan book's year: merchants whose business grows, shrinks or
defaults month by month, with an optional downturn, for the lending demo and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = ("apparel", "electronics", "food", "home", "beauty", "sports")
# Category risk offsets (log-odds): electronics resellers default more, food less.
CATEGORY_RISK = {"apparel": 0.2, "electronics": 0.5, "food": -0.4, "home": 0.0, "beauty": -0.1, "sports": 0.1}
TEST_SHARE = 0.2


@dataclass(frozen=True)
class SynthSummary:
    """What `generate` wrote: per-platform raw files and their row/merchant/default counts."""

    platform_files: list[Path]
    test_file: Path
    rows: list[int]
    merchants: list[int]
    default_rates: list[float]


def _platform_profiles(platforms: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative sizes (mean 1) and default-rate offsets (log-odds) per platform."""
    if platforms == 1:
        return np.ones(1), np.zeros(1)
    sizes = np.linspace(1.5, 0.5, platforms)
    offsets = np.linspace(-0.5, 0.5, platforms)
    return sizes / sizes.mean(), offsets


def _merchant_months(
    rng: np.random.Generator, n: int, months: int, mix: np.ndarray, offset: float, prefix: str
) -> pd.DataFrame:
    """Latent merchant profiles and realised month-level activity and default flags."""
    category = rng.choice(len(CATEGORIES), size=n, p=mix)
    risk = rng.normal(0.0, 1.0, n)  # latent; partly visible through the features
    base_orders = rng.lognormal(2.6, 0.5, n)  # ~13 orders/month on average
    ticket = rng.lognormal(4.5, 0.6, n)  # ~90 yuan average order
    trend = 0.01 - 0.05 * risk + rng.normal(0, 0.02, n)
    rating_mean = np.clip(4.4 - 0.35 * risk + rng.normal(0, 0.2, n), 1.5, 5.0)
    turnover_mean = np.exp(1.8 - 0.35 * risk + rng.normal(0, 0.2, n))

    t = np.arange(months)
    shocks = rng.normal(0, 0.25, (n, months))
    orders = rng.poisson(base_orders[:, None] * np.exp(trend[:, None] * t + shocks)) + 1
    amount_month = orders * ticket[:, None] * np.exp(rng.normal(0, 0.1, (n, months)))
    growth = np.zeros((n, months))
    growth[:, 1:] = np.clip(amount_month[:, 1:] / amount_month[:, :-1] - 1.0, -1.0, 10.0)
    rating_month = np.clip(rating_mean[:, None] + rng.normal(0, 0.25, (n, months)), 1.0, 5.0)
    turnover_month = turnover_mean[:, None] * np.exp(rng.normal(0, 0.15, (n, months)))
    cat_risk = np.array([CATEGORY_RISK[c] for c in CATEGORIES])[category]
    logit = (
        -3.4
        + offset
        + cat_risk[:, None]
        - 2.2 * growth
        - 1.1 * (rating_month - 4.2)
        - 0.9 * (np.log(turnover_month) - 1.8)
        + 0.5 * risk[:, None]
        + rng.normal(0, 0.5, (n, months))
    )
    default = rng.random((n, months)) < 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame(
        {
            "merchant": np.repeat([f"{prefix}{i:05d}" for i in range(n)], months),
            "month_index": np.tile(t, n),
            "category": np.repeat(np.array(CATEGORIES)[category], months),
            "orders": orders.ravel(),
            "ticket": np.repeat(ticket, months),
            "rating": rating_month.ravel(),
            "turnover": turnover_month.ravel(),
            "default": default.ravel().astype(np.int8),
        }
    )


def _transactions(rng: np.random.Generator, months_frame: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Expand merchant-months into individual orders (dates within the month, ratings per order)."""
    reps = months_frame["orders"].to_numpy()
    expanded = months_frame.loc[months_frame.index.repeat(reps)].reset_index(drop=True)
    n = len(expanded)
    month_start = start + pd.to_timedelta(0, unit="D")
    month_starts = pd.DatetimeIndex(
        [month_start + pd.DateOffset(months=int(m)) for m in range(int(expanded["month_index"].max()) + 1)]
    )
    day = rng.integers(0, 28, n)
    dates = month_starts[expanded["month_index"].to_numpy()] + pd.to_timedelta(day, unit="D")
    amount = np.round(expanded["ticket"].to_numpy() * rng.lognormal(-0.08, 0.4, n), 2)
    rating = np.clip(np.round(expanded["rating"].to_numpy() + rng.normal(0, 0.7, n)), 1, 5)
    rating = np.where(rng.random(n) < 0.05, np.nan, rating)  # some orders are never rated
    return pd.DataFrame(
        {
            "merchant_id": expanded["merchant"].to_numpy(),
            "date": dates.strftime("%Y-%m-%d"),
            "amount": amount,
            "rating": rating,
            "inventory_turnover": np.round(expanded["turnover"].to_numpy(), 3),
            "category": expanded["category"].to_numpy(),
            "default": expanded["default"].to_numpy(),
        }
    )


def generate(
    out_dir: Path, platforms: int = 3, merchants: int = 500, months: int = 12, seed: int = 0, start: str = "2025-01-01"
) -> SynthSummary:
    """Write `platform_<i>.csv` for each platform and a held-out `test.csv` to `out_dir`.

    `merchants` is the average number of training merchants per platform; platforms differ in
    size (1.5x to 0.5x), category mix and default rate.
    """
    if platforms < 1 or merchants < 1 or months < 1:
        raise ValueError("platforms, merchants and months must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes, offsets = _platform_profiles(platforms)
    start_ts = pd.Timestamp(start)
    files, rows, counts, rates, test_parts = [], [], [], [], []
    for p in range(platforms):
        mix = rng.dirichlet(np.full(len(CATEGORIES), 0.8))
        n_train = max(2, round(merchants * sizes[p]))
        n_total = n_train + max(1, round(n_train * TEST_SHARE / (1 - TEST_SHARE)))
        months_frame = _merchant_months(rng, n_total, months, mix, offsets[p], prefix=f"P{p + 1}M")
        tx = _transactions(rng, months_frame, start_ts)
        test_ids = {f"P{p + 1}M{i:05d}" for i in range(n_train, n_total)}
        in_test = tx["merchant_id"].isin(test_ids)
        train = tx[~in_test]
        test_parts.append(tx[in_test])
        path = out_dir / f"platform_{p + 1}.csv"
        train.to_csv(path, index=False)
        files.append(path)
        rows.append(len(train))
        counts.append(n_train)
        train_months = months_frame[~months_frame["merchant"].isin(test_ids)]
        rates.append(float(train_months["default"].mean()))
    test_file = out_dir / "test.csv"
    pd.concat(test_parts, ignore_index=True).to_csv(test_file, index=False)
    return SynthSummary(files, test_file, rows, counts, rates)


def make_feature_files(
    out_dir: Path, platforms: int = 3, merchants: int = 300, months: int = 12, seed: int = 0
) -> tuple[list[Path], Path]:
    """Generate raw data and turn it into feature CSVs: (one file per platform, test file)."""
    from federation.features import build_features
    from federation.schema import read_table

    out_dir = Path(out_dir)
    summary = generate(out_dir / "raw", platforms=platforms, merchants=merchants, months=months, seed=seed)
    features_dir = out_dir / "features"
    features_dir.mkdir(parents=True, exist_ok=True)
    client_files = []
    for raw_path in summary.platform_files:
        target = features_dir / raw_path.name
        build_features(read_table(raw_path), str(raw_path)).to_csv(target, index=False)
        client_files.append(target)
    test_target = features_dir / "test.csv"
    build_features(read_table(summary.test_file), str(summary.test_file)).to_csv(test_target, index=False)
    return client_files, test_target


# -- vertical: the bank's and one platform's halves of the same merchants -------------------------
@dataclass(frozen=True)
class VerticalSummary:
    """What `generate_vertical` wrote: the bank's labelled half and the platform's trade half."""

    bank_file: Path
    platform_file: Path
    bank_merchants: int
    platform_merchants: int
    shared: int
    default_rate: float


def _vertical_merchants(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Latent risk in three parts: one the bank's features show, one the platform's features
    show, one neither shows. The label needs both visible parts (signal on both sides)."""
    bank_risk, trade_risk, hidden = rng.normal(size=(3, n))
    category = rng.choice(len(CATEGORIES), size=n, p=np.full(len(CATEGORIES), 1 / len(CATEGORIES)))
    cat_risk = np.array([CATEGORY_RISK[c] for c in CATEGORIES])[category]
    logit = -2.7 + 0.9 * bank_risk + 1.1 * trade_risk + 0.4 * hidden + 0.3 * bank_risk * trade_risk + cat_risk
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return pd.DataFrame(
        {
            # the bank's half: its relationship with the merchant
            "account_age_months": np.clip(np.round(rng.normal(48 - 8 * bank_risk, 20)), 1, 240).astype(int),
            "past_loans": rng.poisson(np.exp(0.8 - 0.2 * bank_risk)),
            "overdue_count": rng.poisson(np.exp(-1.2 + 0.7 * bank_risk + 0.3 * hidden)),
            "avg_deposit": np.round(np.exp(rng.normal(11 - 0.5 * bank_risk - 0.2 * hidden, 0.8)), 2),
            "default": default,
            # the platform's half: its trade with the merchant over the last 12 months
            "amount": np.round(np.exp(rng.normal(11 - 0.5 * trade_risk, 0.6)), 2),
            "count": rng.poisson(np.exp(5 - 0.4 * trade_risk)) + 1,
            "avg_rating": np.round(np.clip(4.4 - 0.35 * trade_risk - 0.15 * hidden + rng.normal(0, 0.2, n), 1, 5), 2),
            "inventory_turnover": np.round(np.exp(1.8 - 0.35 * trade_risk + rng.normal(0, 0.2, n)), 3),
            "growth": np.round(0.01 - 0.06 * trade_risk + rng.normal(0, 0.04, n), 4),
            "category": np.array(CATEGORIES)[category],
        }
    )


BANK_VERTICAL_COLUMNS = ("merchant_id", "account_age_months", "past_loans", "overdue_count", "avg_deposit", "default")
PLATFORM_VERTICAL_COLUMNS = ("merchant_id", "amount", "count", "avg_rating", "inventory_turnover", "growth", "category")


def generate_vertical(
    out_dir: Path,
    bank_merchants: int = 3000,
    platform_merchants: int = 3000,
    shared: float = 0.7,
    seed: int = 0,
) -> VerticalSummary:
    """Write `bank.csv` (the bank's features and the default label) and `platform.csv` (one
    platform's trade features) for partly overlapping merchants: `shared` is the share of the
    bank's merchants the platform also serves. Rows come shuffled, ids are the same strings.
    """
    if bank_merchants < 1 or platform_merchants < 1 or not 0.0 <= shared <= 1.0:
        raise ValueError("bank_merchants and platform_merchants must be >= 1 and shared within [0, 1]")
    rng = np.random.default_rng(seed)
    both = min(round(bank_merchants * shared), platform_merchants)
    total = bank_merchants + platform_merchants - both
    people = _vertical_merchants(rng, total)
    people.insert(0, "merchant_id", [f"M{i:07d}" for i in rng.permutation(total)])
    bank = people.iloc[:bank_merchants]
    platform = people.iloc[bank_merchants - both :]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bank_file, platform_file = out_dir / "bank.csv", out_dir / "platform.csv"
    bank[list(BANK_VERTICAL_COLUMNS)].sample(frac=1.0, random_state=seed).to_csv(bank_file, index=False)
    platform[list(PLATFORM_VERTICAL_COLUMNS)].sample(frac=1.0, random_state=seed + 1).to_csv(platform_file, index=False)
    return VerticalSummary(bank_file, platform_file, len(bank), len(platform), both, float(bank["default"].mean()))


# -- the loan book: a year of months in which businesses grow, shrink or default ------------------
PATHS = ("grow", "steady", "shrink", "default")
PATH_SHARES = (0.25, 0.45, 0.2, 0.1)
PATH_TREND = {"grow": 0.06, "steady": 0.0, "shrink": -0.09, "default": 0.0}  # log orders per month


@dataclass(frozen=True)
class BookYear:
    """What `generate_book_year` made: each merchant's monthly features (as `yinqi features`
    builds them from its transactions) over the history and the book's months, and the truth
    the bank never sees: its path, the month it starts defaulting, its platform."""

    features: pd.DataFrame  # merchant_id, month, the feature columns, default
    months: list[str]  # the book's months, oldest first (the history comes before)
    paths: dict[str, str]
    default_month: dict[str, str]  # defaulting merchants -> first month they are in default
    platform_of: dict[str, str]  # merchant -> "platform_<i>"
    downturn_month: str | None


def _book_months(
    rng: np.random.Generator,
    n: int,
    total: int,
    history: int,
    paths: np.ndarray,
    default_at: np.ndarray,
    downturn_at: int | None,
    downturn: float,
    prefix: str,
) -> pd.DataFrame:
    """Merchant-months like `_merchant_months` (same latent profile), with a path per merchant
    from the book's first month on: trend of orders, a collapse before a default, a downturn."""
    category = rng.integers(0, len(CATEGORIES), n)  # one mix for every book: drift shows, not the mix
    risk = rng.normal(0.0, 1.0, n)
    base_orders = rng.lognormal(2.6, 0.5, n)
    ticket = rng.lognormal(4.5, 0.6, n)
    rating_mean = np.clip(4.4 - 0.35 * risk + rng.normal(0, 0.2, n), 1.5, 5.0)
    turnover_mean = np.exp(1.8 - 0.35 * risk + rng.normal(0, 0.2, n))
    t = np.arange(total)
    book_t = np.clip(t - history, 0, None)[None, :]  # months since the book started (0 before)
    trend = np.array([PATH_TREND[p] for p in paths])[:, None] * book_t
    collapse = np.where(paths[:, None] == "default", np.clip(t[None, :] - (default_at[:, None] - 2), 0, None), 0)
    log_level = trend - 0.45 * collapse + rng.normal(0, 0.2, (n, total))
    if downturn_at is not None:
        log_level = log_level + np.where(t[None, :] >= downturn_at, math.log(downturn), 0.0)
    orders = rng.poisson(base_orders[:, None] * np.exp(log_level)) + 1
    rating = np.clip(rating_mean[:, None] - 0.4 * collapse + rng.normal(0, 0.25, (n, total)), 1.0, 5.0)
    turnover = turnover_mean[:, None] * np.exp(-0.3 * collapse + rng.normal(0, 0.15, (n, total)))
    default = (paths[:, None] == "default") & (t[None, :] >= default_at[:, None])
    return pd.DataFrame(
        {
            "merchant": np.repeat([f"{prefix}{i:05d}" for i in range(n)], total),
            "month_index": np.tile(t, n),
            "category": np.repeat(np.array(CATEGORIES)[category], total),
            "orders": orders.ravel(),
            "ticket": np.repeat(ticket, total),
            "rating": rating.ravel(),
            "turnover": turnover.ravel(),
            "default": default.ravel().astype(np.int8),
        }
    )


def generate_book_year(
    merchants: int = 200,
    platforms: int = 3,
    months: int = 12,
    history: int = 6,
    start: str = "2026-01",
    seed: int = 0,
    downturn_month: int | None = 7,
    downturn: float = 0.5,
) -> BookYear:
    """A year (`months`) of a loan book's merchants after `history` months of trade.

    Each merchant follows a path from the book's first month: `grow` (+6 % orders a month),
    `steady`, `shrink` (-9 % a month) or `default` (sales and ratings collapse from two months
    before its default month, in default from then on; the default month lies between four
    months before the book starts and its ninth month, so some applicants come with defaults
    behind them). From the book's
    month `downturn_month` (1-based; None: no downturn) every merchant's orders drop to
    `downturn` of their level, so the applicants of the later months no longer look like the
    population a model trained before it. Features come from generated transactions through
    `federation.features.build_features`, as a platform would build them.
    """
    from federation.features import build_features

    if merchants < platforms or platforms < 1 or months < 1 or history < 1:
        raise ValueError("need at least one merchant per platform, one platform, one month and one month of history")
    if downturn_month is not None and not 1 <= downturn_month <= months:
        raise ValueError(f"downturn_month must lie within the book's {months} months")
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(f"{start}-01") - pd.DateOffset(months=history)
    total = history + months
    book_months = [(pd.Timestamp(f"{start}-01") + pd.DateOffset(months=i)).strftime("%Y-%m") for i in range(months)]
    sizes = np.full(platforms, merchants // platforms)
    sizes[: merchants % platforms] += 1
    frames, paths, default_month, platform_of = [], {}, {}, {}
    for p, n in enumerate(sizes):
        prefix = f"P{p + 1}B"
        merchant_paths = rng.choice(np.array(PATHS), size=n, p=np.array(PATH_SHARES))
        default_at = history + rng.integers(-min(4, history - 1), min(9, months - 1) + 1, n)
        downturn_at = history + downturn_month - 1 if downturn_month is not None else None
        months_frame = _book_months(rng, n, total, history, merchant_paths, default_at, downturn_at, downturn, prefix)
        raw = _transactions(rng, months_frame, first)
        frames.append(build_features(raw, f"platform_{p + 1} (synthetic book)"))
        for i in range(n):
            merchant = f"{prefix}{i:05d}"
            paths[merchant] = str(merchant_paths[i])
            platform_of[merchant] = f"platform_{p + 1}"
            if merchant_paths[i] == "default":
                default_month[merchant] = (first + pd.DateOffset(months=int(default_at[i]))).strftime("%Y-%m")
    features = pd.concat(frames, ignore_index=True)
    return BookYear(
        features=features,
        months=book_months,
        paths=paths,
        default_month=default_month,
        platform_of=platform_of,
        downturn_month=book_months[downturn_month - 1] if downturn_month is not None else None,
    )
