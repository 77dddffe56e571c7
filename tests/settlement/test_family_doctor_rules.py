"""Pure formulas of the family-doctor fee (SPEC §6.3): hand-worked figures and identities, no database."""
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.engine.base import get_rule
from settlement.engine.schemes.family_doctor import FamilyDoctorInputs, FamilyDoctorParams, entitled, mid_year_advance

D = Decimal
PARAMS = FamilyDoctorParams()


def inputs(signed_fees, served_fees, score="100", signed=0, served=0):
    return FamilyDoctorInputs(
        unit_code="H51040200001", unit_name="测试卫生院", signed_persons=signed, signed_fees=D(signed_fees),
        served_persons=served, served_fees=D(served_fees), score=D(score), score_assessed=True,
    )


def compute(unit, paid="0"):
    return get_rule("family_doctor").compute(unit, PARAMS, D(paid))


def test_defaults_are_the_panzhihua_figures():
    assert PARAMS.advance_ratio == D("0.50")
    assert PARAMS.census_day(2026).isoformat() == "2026-06-30"
    assert PARAMS.advance_payment_month == 7
    assert PARAMS.default_score == D("100")


def test_score_85_worked_by_hand():
    # 120 signed × 100 元 → Q = 12,000.00; 100 served × 100 元 → A = 10,000.00; S = 2,000.00.
    # E = 10,000.00 × 85 / 100 = 8,500.00; unit part = E − A = −1,500.00; fund part = 2,000.00 + 1,500.00 = 3,500.00.
    # Mid-year advance 0.5 × 12,000.00 = 6,000.00 paid → year-end 8,500.00 − 6,000.00 = 2,500.00.
    outcome = compute(inputs("12000.00", "10000.00", "85", signed=120, served=100), paid="6000.00")
    assert (outcome.quota, outcome.actual, outcome.surplus) == (D("12000.00"), D("10000.00"), D("2000.00"))
    assert outcome.entitled == D("8500.00")
    assert (outcome.unit_part, outcome.fund_part) == (D("-1500.00"), D("3500.00"))
    assert outcome.amount == D("2500.00")
    assert outcome.details["年中预付额"] == "6000.00"


def test_full_score_pays_the_served_fees():
    # Score 100: E = A = 3 × 100 + 1 × 150 = 450.00; unit part 0; fund part = S = 500.00 − 450.00 = 50.00.
    outcome = compute(inputs("500.00", "450.00"))
    assert (outcome.entitled, outcome.unit_part, outcome.fund_part) == (D("450.00"), D("0.00"), D("50.00"))


def test_more_served_than_signed_gives_a_negative_surplus_but_no_penalty():
    # Signed on 30 June 2 × 100 = 200.00; served 5 × 100 = 500.00 (contracts signed after June).
    # S = −300.00; E = A = 500.00 at score 100; unit part 0; the fund's part is all of S.
    outcome = compute(inputs("200.00", "500.00"))
    assert (outcome.surplus, outcome.entitled, outcome.unit_part, outcome.fund_part) == (
        D("-300.00"), D("500.00"), D("0.00"), D("-300.00"),
    )


def test_entitled_is_rounded_half_up_once():
    # 150.00 × 87.35 / 100 = 131.025 → 131.03.
    assert entitled(D("150.00"), D("87.35")) == D("131.03")


def test_mid_year_advance():
    # 0.5 × 12,345.00 = 6,172.50; 0.5 × 100.01 = 50.005 → 50.01.
    assert mid_year_advance(D("12345.00"), PARAMS) == D("6172.50")
    assert mid_year_advance(D("100.01"), PARAMS) == D("50.01")


def test_an_impossible_census_day_is_refused():
    with pytest.raises(ValueError, match="不是有效日期"):
        FamilyDoctorParams(advance_month=2, advance_day=30)


cents = st.integers(min_value=0, max_value=10**10).map(lambda n: D(n) / 100)


@settings(max_examples=300, deadline=None)
@given(
    signed=cents, served=cents, paid=cents,
    score=st.integers(min_value=0, max_value=10000).map(lambda n: D(n) / 100),
)
def test_identities(signed, served, paid, score):
    outcome = compute(inputs(signed, served, score), paid=paid)  # UnitOutcome checks S, parts and amount
    assert outcome.unit_part + outcome.fund_part == outcome.quota - outcome.actual
    assert outcome.entitled == outcome.actual + outcome.unit_part
    # A score of at most 100 only ever deducts, never adds: 0 ≤ E ≤ A.
    assert D("0") <= outcome.entitled <= outcome.actual
