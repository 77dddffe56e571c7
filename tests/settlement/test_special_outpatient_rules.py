"""Pure formulas of the 二类门特 scheme (SPEC §6.2): hand-worked figures and identities, no database."""
import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.engine.base import RunContext, get_rule
from settlement.engine.schemes.special_outpatient import (
    CLIFF, TIERED, HeadClass, SpecialOutpatientInputs, SpecialOutpatientParams, calibration_factor,
    institution_quota, monthly_prepayment, propose_standards, risk_weight, share, standard_sums,
)

D = Decimal
PARAMS = SpecialOutpatientParams()
CLIFF_PARAMS = SpecialOutpatientParams(overspend_mode=CLIFF)


def inputs_with_quota(quota, actual, code="H51040200001"):
    """Inputs whose Q is `quota` (k = 1, Σ S·w = Q) and whose A is `actual`."""
    return SpecialOutpatientInputs(
        unit_code=code, unit_name="测试医院", heads_by_disease={}, planned_heads_by_disease={},
        standard_sum=D(quota), weighted_sum=D(quota), calibration=D(1), plan_weighted_sum=D(quota),
        plan_calibration=D(1), plan_quota=D(quota), actual=D(actual),
    )


def test_defaults_are_the_panzhihua_figures():
    assert PARAMS.surplus_retention == D("0.80")
    assert PARAMS.overspend_mode == TIERED
    assert PARAMS.overspend_tier == D("0.10")
    assert PARAMS.fund_share_in_tier == D("0.40")
    assert PARAMS.prepayment_ratio == D("0.95")
    assert (PARAMS.risk_age, PARAMS.risk_a, PARAMS.risk_b) == (65, D("0.2"), D("0.3"))


def test_unknown_overspend_mode_is_refused():
    with pytest.raises(ValueError, match="超支分担方式"):
        SpecialOutpatientParams(overspend_mode="linear")


# --- Sharing -----------------------------------------------------------------------------------


def test_spec_worked_example():
    # SPEC §6.2: Q = 1,000,000.00, A = 1,200,000.00 → O = 200,000.00; band = 10% × Q = 100,000.00;
    # fund bears 0.4 × 100,000.00 = 40,000.00; institution bears 200,000.00 − 40,000.00 = 160,000.00;
    # E = Q + 40,000.00 = 1,040,000.00; prepaid 950,000.00 → year-end 90,000.00.
    unit = inputs_with_quota("1000000.00", "1200000.00")
    outcome = get_rule("special_outpatient").compute(unit, PARAMS, D("950000.00"))
    assert outcome.quota == D("1000000.00")
    assert outcome.actual == D("1200000.00")
    assert outcome.surplus == D("-200000.00")
    assert outcome.unit_part == D("-160000.00")
    assert outcome.fund_part == D("-40000.00")
    assert outcome.entitled == D("1040000.00")
    assert outcome.amount == D("90000.00")


def test_surplus_institution_keeps_eighty_percent():
    # Q = 500,000.00, A = 400,000.00 → S = 100,000.00; unit 0.8 × S = 80,000.00; fund keeps 20,000.00;
    # E = A + 80,000.00 = 480,000.00.
    result = share(D("500000.00"), D("400000.00"), PARAMS)
    assert (result.unit_part, result.fund_part, result.entitled) == (D("80000.00"), D("20000.00"), D("480000.00"))


def test_overspend_within_the_band_is_shared_40_60_in_both_modes():
    # Q = 1,000,000.00, A = 1,050,000.00 → O = 50,000.00 ≤ band 100,000.00;
    # fund 0.4 × 50,000.00 = 20,000.00, institution 30,000.00; E = Q + 20,000.00 = 1,020,000.00.
    for params in (PARAMS, CLIFF_PARAMS):
        result = share(D("1000000.00"), D("1050000.00"), params)
        assert (result.unit_part, result.fund_part, result.entitled) == (
            D("-30000.00"), D("-20000.00"), D("1020000.00"),
        )


def test_cliff_beyond_the_band_leaves_all_overspend_to_the_institution():
    # O = 200,000.00 > band 100,000.00. Tiered: fund 40,000.00 (worked example). Cliff: fund 0,
    # institution bears all 200,000.00, E = A − 200,000.00 = Q = 1,000,000.00.
    tiered = share(D("1000000.00"), D("1200000.00"), PARAMS)
    cliff = share(D("1000000.00"), D("1200000.00"), CLIFF_PARAMS)
    assert tiered.entitled == D("1040000.00")
    assert (cliff.unit_part, cliff.fund_part, cliff.entitled) == (D("-200000.00"), D("0.00"), D("1000000.00"))


def test_cliff_at_exactly_the_band_still_shares_and_one_fen_more_does_not():
    # O = 100,000.00 = 10% × Q: 以内 includes the figure → fund 0.4 × 100,000.00 = 40,000.00, E = 1,040,000.00.
    at_band = share(D("1000000.00"), D("1100000.00"), CLIFF_PARAMS)
    assert (at_band.unit_part, at_band.fund_part, at_band.entitled) == (D("-60000.00"), D("-40000.00"), D("1040000.00"))
    # O = 100,000.01: cliff → fund 0, E = Q; tiered → fund still 0.4 × 100,000.00 = 40,000.00,
    # institution 60,000.01, E = 1,100,000.01 − 60,000.01 = 1,040,000.00.
    past_cliff = share(D("1000000.00"), D("1100000.01"), CLIFF_PARAMS)
    past_tiered = share(D("1000000.00"), D("1100000.01"), PARAMS)
    assert (past_cliff.unit_part, past_cliff.entitled) == (D("-100000.01"), D("1000000.00"))
    assert (past_tiered.unit_part, past_tiered.fund_part, past_tiered.entitled) == (
        D("-60000.01"), D("-40000.00"), D("1040000.00"),
    )


def test_unit_part_is_rounded_once_and_the_fund_takes_the_remainder():
    # Surplus: Q = 333.33, A = 0 → 0.8 × 333.33 = 266.664 → 266.66; fund 333.33 − 266.66 = 66.67.
    surplus = share(D("333.33"), D("0.00"), PARAMS)
    assert (surplus.unit_part, surplus.fund_part) == (D("266.66"), D("66.67"))
    # Overspend: Q = 100.01, A = 110.00 → O = 9.99 ≤ band 10.001; fund 0.4 × 9.99 = 3.996;
    # institution 9.99 − 3.996 = 5.994 → 5.99; fund part −9.99 + 5.99 = −4.00; E = 110.00 − 5.99 = 104.01.
    over = share(D("100.01"), D("110.00"), PARAMS)
    assert (over.unit_part, over.fund_part, over.entitled) == (D("-5.99"), D("-4.00"), D("104.01"))


def test_no_quota_and_some_spending_is_all_the_institutions():
    # Q = 0 → band 0 → every 元 of O is the institution's: E = Q = 0.
    result = share(D("0.00"), D("1234.56"), PARAMS)
    assert (result.unit_part, result.fund_part, result.entitled) == (D("-1234.56"), D("0.00"), D("0.00"))


cents = st.integers(min_value=0, max_value=10**10).map(lambda n: D(n) / 100)
ratios = st.integers(min_value=0, max_value=100).map(lambda n: D(n) / 100)


@settings(max_examples=300, deadline=None)
@given(
    quota=cents, actual=cents, mode=st.sampled_from([TIERED, CLIFF]),
    retention=ratios, tier=ratios, fund_share=ratios, paid=cents,
)
def test_sharing_identities(quota, actual, mode, retention, tier, fund_share, paid):
    params = SpecialOutpatientParams(
        surplus_retention=retention, overspend_mode=mode, overspend_tier=tier, fund_share_in_tier=fund_share,
    )
    result = share(quota, actual, params)
    surplus = quota - actual
    assert result.unit_part + result.fund_part == surplus
    assert result.entitled == actual + result.unit_part
    assert result.unit_part == result.unit_part.quantize(D("0.01"))
    if surplus >= 0:
        # The institution keeps part of the surplus, never more: A ≤ E ≤ Q.
        assert actual <= result.entitled <= quota
    else:
        # The institution bears part of the overspend, at most all of it: Q ≤ E ≤ A; the fund never
        # bears more than its share of the band (+ half a 分 of rounding).
        assert quota <= result.entitled <= actual
        assert -result.fund_part <= fund_share * tier * quota + D("0.005")
    # compute() builds a UnitOutcome, whose own identity checks would raise.
    outcome = get_rule("special_outpatient").compute(inputs_with_quota(quota, actual), params, paid)
    assert outcome.amount == outcome.entitled - paid


# --- Weights and calibration -------------------------------------------------------------------


def test_risk_weights():
    # w = 1 + 0.2·[aged] + 0.3·[一类门特]
    assert risk_weight(False, False, PARAMS) == D("1")
    assert risk_weight(True, False, PARAMS) == D("1.2")
    assert risk_weight(False, True, PARAMS) == D("1.3")
    assert risk_weight(True, True, PARAMS) == D("1.5")


def test_calibration_keeps_the_city_total_worked_by_hand():
    # Standards X = 1,000, Y = 2,000.
    # Institution 1: X plain (w 1), X aged (1.2), Y with 一类 (1.3) → Σ S = 4,000; Σ S·w = 1,000 + 1,200 + 2,600 = 4,800.
    # Institution 2: Y aged + 一类 (1.5), X plain (1)            → Σ S = 3,000; Σ S·w = 3,000 + 1,000 = 4,000.
    # City: Σ S = 7,000, Σ S·w = 8,800, k = 7,000 / 8,800.
    # Q1 = 4,800 × 7,000 / 8,800 = 3,818.1818… → 3,818.18; Q2 = 4,000 × 7,000 / 8,800 = 3,181.8181… → 3,181.82;
    # Q1 + Q2 = 7,000.00.
    standards = {"X": D("1000"), "Y": D("2000")}
    first = [HeadClass("X", False, False, 1), HeadClass("X", True, False, 1), HeadClass("Y", False, True, 1)]
    second = [HeadClass("Y", True, True, 1), HeadClass("X", False, False, 1)]
    assert standard_sums(first, standards, PARAMS) == (D("4000"), D("4800"))
    assert standard_sums(second, standards, PARAMS) == (D("3000"), D("4000"))
    k = calibration_factor(*standard_sums(first + second, standards, PARAMS))
    assert institution_quota(k, D("4800")) == D("3818.18")
    assert institution_quota(k, D("4000")) == D("3181.82")


def test_a_disease_without_standard_contributes_nothing():
    # Only X has a standard: 3 X heads aged → Σ S = 3 × 500 = 1,500; Σ S·w = 3 × 600 = 1,800. Z ignored.
    classes = [HeadClass("X", True, False, 3), HeadClass("Z", True, True, 7)]
    assert standard_sums(classes, {"X": D("500")}, PARAMS) == (D("1500"), D("1800"))


def test_calibration_without_heads_is_neutral():
    assert calibration_factor(D("0"), D("0")) == D("1")


head_classes = st.lists(
    st.builds(HeadClass, st.sampled_from(["A", "B", "C", "D"]), st.booleans(), st.booleans(), st.integers(1, 500)),
    min_size=1, max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    institutions=st.lists(head_classes, min_size=1, max_size=12),
    amounts=st.lists(st.integers(min_value=1, max_value=10**7), min_size=4, max_size=4),
    risk_a=ratios, risk_b=ratios,
)
def test_calibration_keeps_the_city_total(institutions, amounts, risk_a, risk_b):
    # Σ_institutions q2(k · Σ S_d·w) = Σ S_d over all heads, within rounding of 1 分 per institution.
    params = SpecialOutpatientParams(risk_a=risk_a, risk_b=risk_b)
    standards = {code: D(amount) / 100 for code, amount in zip("ABCD", amounts)}
    every_head = [cls for classes in institutions for cls in classes]
    city_standard, city_weighted = standard_sums(every_head, standards, params)
    k = calibration_factor(city_standard, city_weighted)
    quotas = [institution_quota(k, standard_sums(classes, standards, params)[1]) for classes in institutions]
    assert abs(sum(quotas) - city_standard) <= D("0.01") * len(institutions)


# --- Prepayment --------------------------------------------------------------------------------


def test_monthly_prepayment():
    # 1,200,000.00 / 12 × 0.95 = 95,000.00; 1,000,000.00 / 12 × 0.95 = 79,166.666… → 79,166.67.
    assert monthly_prepayment(D("1200000.00"), PARAMS) == D("95000.00")
    assert monthly_prepayment(D("1000000.00"), PARAMS) == D("79166.67")


# --- 测算 ---------------------------------------------------------------------------------------


def test_proposal_worked_by_hand():
    # h_1 = 120,000 / 40 = 3,000; h_2 = 50,000 / 100 = 500. N_1 = 50, N_2 = 120.
    # Σ h·N = 150,000 + 60,000 = 210,000; B = 189,000 → scale 0.9 → S_1 = 2,700.00, S_2 = 450.00.
    # Check: Σ S·N = 135,000 + 54,000 = 189,000 = B. d3 is planned without history → reported, not priced.
    proposal = propose_standards(
        {"d1": D("120000.00"), "d2": D("50000.00")}, {"d1": 40, "d2": 100}, {"d1": 50, "d2": 120, "d3": 10},
        D("189000.00"),
    )
    assert proposal.standards == {"d1": D("2700.00"), "d2": D("450.00")}
    assert proposal.weighted_history == D("210000")
    assert proposal.missing_history == ("d3",)


def test_proposal_without_history_is_refused():
    with pytest.raises(ValueError, match="无法测算"):
        propose_standards({}, {}, {"d1": 5}, D("1000.00"))


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(1, 10**9), st.integers(1, 10**4), st.integers(0, 10**4)), min_size=1, max_size=10,
    ).filter(lambda rows: any(n for _, _, n in rows)),
    budget=st.integers(min_value=0, max_value=10**11),
)
def test_proposal_spends_the_budget(data, budget):
    # Σ_d S_d·N_d = B, up to the half 分 each S_d is rounded by, times its heads.
    paid = {f"d{i}": D(p) / 100 for i, (p, _, _) in enumerate(data)}
    heads = {f"d{i}": h for i, (_, h, _) in enumerate(data)}
    planned = {f"d{i}": n for i, (_, _, n) in enumerate(data)}
    proposal = propose_standards(paid, heads, planned, D(budget) / 100)
    spent = sum(proposal.standards[code] * n for code, n in planned.items())
    assert abs(spent - D(budget) / 100) <= D("0.005") * sum(planned.values())


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PARAMS.risk_a = D("0.5")


# --- Cross-unit check ----------------------------------------------------------------------------


def test_finish_flags_a_city_run_whose_quotas_miss_the_standards():
    # Two units: Q 3,818.18 + 3,181.82 = 7,000.00 against Σ S 4,000 + 3,000 = 7,000 → nothing to say.
    rule = get_rule("special_outpatient")
    first = dataclasses.replace(inputs_with_quota("3818.18", "0", "H1"), standard_sum=D("4000"))
    second = dataclasses.replace(inputs_with_quota("3181.82", "0", "H2"), standard_sum=D("3000"))
    outcomes = [rule.compute(unit, PARAMS, D("0")) for unit in (first, second)]
    city = RunContext("special_outpatient", 2026)
    assert rule.finish(city, PARAMS, outcomes) == []
    # Q 3,818.20 + 3,181.82 = 7,000.02: 2 分 off for 2 units, beyond ½ 分 each → a warning.
    off = dataclasses.replace(first, weighted_sum=D("3818.20"))
    warnings = rule.finish(city, PARAMS, [rule.compute(off, PARAMS, D("0")), outcomes[1]])
    assert len(warnings) == 1 and "7000.02" in warnings[0]
    # A county run holds only part of the city's heads: no such check.
    assert rule.finish(RunContext("special_outpatient", 2026, "510402"), PARAMS, outcomes[:1]) == []
