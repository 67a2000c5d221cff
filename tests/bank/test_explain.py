"""Reason codes from the model itself: exact logistic contributions (hand-computed), integrated
gradients for the MLP (equal to them on a linear model, complete on a non-linear one), and the
plain words a merchant reads, in English and Chinese."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from federation.explain import attribute, integrated_gradients, reference_vector, top_features
from federation.model import build_model, save_model, write_report
from federation.preprocess import Encoder
from federation.reasons import feature_reason, turnover_trend

# amount: mean 2,000 yuan, std 1,000; growth: mean 0, std 0.5; category one-hot food/toys/other
ENCODER = Encoder(
    numeric={"amount": (2000.0, 1000.0), "growth": (0.0, 0.5)},
    categorical={"category": ["food", "toys", "__other__"]},
    columns=["amount", "growth", "category"],
)
# training population: 60 food, 30 toys, 10 books (books is outside the vocabulary: __other__)
CATEGORY_COUNTS = {"category": {"food": 60, "toys": 30, "books": 10}}
# encoded order: amount, growth, category=food, category=toys, category=__other__
WEIGHTS = [-0.5, -2.0, 0.2, -0.1, 0.0]
BIAS = -3.0


def logistic() -> torch.nn.Module:
    model = build_model(ENCODER.n_features, "logistic")
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([WEIGHTS]))
        model[0].bias.fill_(BIAS)
    return model


def merchant_rows() -> list[dict]:
    """Four months: turnover 1,538.46 -> 1,000 yuan (-35 % over 3 months), -35 % growth at the end."""
    amounts = [1538.46, 1400.0, 1300.0, 1000.0]
    return [
        {"month": f"2026-0{i + 1}", "amount": a, "growth": g, "category": "food"}
        for i, (a, g) in enumerate(zip(amounts, [0.0, -0.09, -0.07, -0.35], strict=True))
    ]


def test_reference_merchant_is_the_population_average_and_other_takes_unknown_categories() -> None:
    reference = reference_vector(ENCODER, CATEGORY_COUNTS)
    assert reference.tolist() == pytest.approx([0.0, 0.0, 0.6, 0.3, 0.1])
    assert reference_vector(ENCODER).tolist() == pytest.approx([0.0, 0.0, 1 / 3, 1 / 3, 1 / 3])


def test_logistic_contributions_are_weight_times_encoded_minus_reference() -> None:
    row = merchant_rows()[-1]
    x = ENCODER.transform(pd.DataFrame([{k: row[k] for k in ENCODER.columns}]))
    # encoded: amount (1000 - 2000) / 1000 = -1; growth -0.35 / 0.5 = -0.7; food [1, 0, 0]
    attribution = attribute(logistic(), "logistic", ENCODER, x, reference_vector(ENCODER, CATEGORY_COUNTS))
    contributions = attribution.rows()[0]
    # amount: -0.5 x (-1 - 0) = 0.5; growth: -2.0 x (-0.7 - 0) = 1.4;
    # category: 0.2 x (1 - 0.6) + (-0.1) x (0 - 0.3) + 0 x (0 - 0.1) = 0.08 + 0.03 = 0.11
    assert contributions == pytest.approx({"amount": 0.5, "growth": 1.4, "category": 0.11}, abs=1e-6)
    # reference logit: -3 + 0.2 x 0.6 - 0.1 x 0.3 = -2.91; the contributions add up to the logit
    assert attribution.reference_logit == pytest.approx(-2.91, abs=1e-6)
    logit = BIAS + sum(w * v for w, v in zip(WEIGHTS, x[0], strict=True))
    assert logit == pytest.approx(-0.9, abs=1e-6)
    assert attribution.reference_logit + sum(contributions.values()) == pytest.approx(logit, abs=1e-6)


def test_integrated_gradients_equal_the_exact_contributions_on_a_linear_model() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, ENCODER.n_features)).astype(np.float32)
    reference = reference_vector(ENCODER, CATEGORY_COUNTS)
    exact = attribute(logistic(), "logistic", ENCODER, x, reference).values
    via_ig = attribute(logistic(), "mlp", ENCODER, x, reference, steps=4).values  # IG on the same model
    np.testing.assert_allclose(via_ig, exact, atol=1e-5)


def test_integrated_gradients_on_an_mlp_add_up_to_the_logit_difference() -> None:
    torch.manual_seed(1)
    model = build_model(ENCODER.n_features, "mlp", hidden=8, seed=1)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, ENCODER.n_features)).astype(np.float32)
    reference = reference_vector(ENCODER, CATEGORY_COUNTS)
    attributions = integrated_gradients(model, x, reference, steps=256)
    with torch.no_grad():
        logits = model(torch.as_tensor(x)).reshape(-1).numpy()
        base = float(model(torch.as_tensor(reference, dtype=torch.float32).reshape(1, -1)).reshape(-1)[0])
    np.testing.assert_allclose(attributions.sum(axis=1), logits - base, atol=2e-3)


def test_top_features_pick_the_strongest_push_each_way() -> None:
    values = np.array([[0.5, 1.4, 0.11], [-0.2, 0.3, -0.9]])
    assert top_features(values, 2, +1).tolist() == [[1, 0], [1, -1]]
    assert top_features(values, 2, -1).tolist() == [[-1, -1], [2, 0]]


@pytest.mark.parametrize("start", [0.0, -5.0, 5e-324, 0.009, float("nan")])
def test_no_turnover_trend_without_a_base_of_one_fen(start: float) -> None:
    rows = [{"amount": start}, {"amount": 900.0}, {"amount": 1000.0}]
    assert turnover_trend(rows) is None
    amount = feature_reason("amount", 0.5, rows, {"amount": 2000.0})
    assert (
        amount.text_en == "monthly turnover 1,000.00 yuan, below the average merchant's 2,000.00 yuan (raises the risk)"
    )


def test_a_turnover_trend_from_one_fen() -> None:
    assert turnover_trend([{"amount": 0.01}, {"amount": 1.0}]) == (pytest.approx(99.0), 1)


def test_reasons_in_words_a_merchant_understands() -> None:
    rows = merchant_rows()
    means = {"amount": 2000.0, "growth": 0.0}
    assert turnover_trend(rows) == (pytest.approx(1000.0 / 1538.46 - 1), 3)
    amount = feature_reason("amount", 0.5, rows, means)
    assert (amount.code, amount.text_en, amount.text_zh) == (
        "TURNOVER",
        "turnover fell 35 % over 3 months (raises the risk)",
        "近3个月营业额下降35%（推高风险）",
    )
    growth = feature_reason("growth", 1.4, rows, means)
    assert growth.text_en == "sales fell 35 % on the previous month (raises the risk)"
    assert growth.text_zh == "销售额环比下降35%（推高风险）"
    category = feature_reason("category", -0.2, rows, means)
    assert category.text_en == "business category 'food' (lowers the risk)"
    assert category.text_zh == "经营类目「food」（降低风险）"
    steady = [{"amount": 900.0}, {"amount": 910.0}]
    level = feature_reason("amount", 0.3, steady, means)
    assert level.text_en == "monthly turnover 910.00 yuan, below the average merchant's 2,000.00 yuan (raises the risk)"
    assert level.text_zh == "月营业额910.00元，低于商户平均水平2,000.00元（推高风险）"


def test_a_declined_application_names_the_policy_then_the_features(tmp_path: Path) -> None:
    """The whole path: a model directory whose report carries the training population, scored by
    the bank: PD 28.9 % (logit -0.9) is declined; reasons are the band, then growth, then turnover."""
    from server.registry import Registry
    from server.scoring import Scorer

    model_dir = tmp_path / "model"
    save_model(model_dir, logistic(), ENCODER, {"architecture": "logistic"})
    write_report(model_dir, {"agreement": {"stats": {"rows": 100, "numeric": {}, "categorical": CATEGORY_COUNTS}}})
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    registry = Registry(url, tmp_path / "store")
    registry.register(model_dir, anchor=False)
    scorer = Scorer(url, registry=registry, consent=lambda ids: np.ones(len(ids), dtype=bool))
    outcome = scorer.score("m1", merchant_rows(), "v1")
    assert outcome.pd == pytest.approx(1 / (1 + math.exp(0.9)), abs=1e-6)
    assert (outcome.outcome, outcome.band, outcome.limit_fen) == ("declined", "decline", 0)
    assert [r.code for r in outcome.reasons] == ["DECLINE_BAND", "SALES_GROWTH", "TURNOVER", "CATEGORY"]
    assert outcome.reasons[0].text_en == "default probability 28.9 % is above the 20.0 % the bank lends up to"
    assert outcome.reasons[0].text_zh == "违约概率28.9%高于银行授信上限20.0%"
    assert [round(r.contribution, 4) for r in outcome.reasons[1:]] == [1.4, 0.5, 0.11]
    assert outcome.application_id == 1
