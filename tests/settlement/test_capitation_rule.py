"""The capitation rule as a pure function: SPEC §6.1 worked example and the identities."""
import dataclasses
import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.engine.schemes.capitation import (
    CapitationInputs, CapitationParams, ClassFigures, DiseaseFigures, compute_capitation,
)

D = Decimal
HUZHOU = CapitationParams()  # defaults are the Huzhou figures: 85% / 85%, bonus caps 5 points


def inputs(a_inside, a_outside="0", bonus="0", reduction="0", classes=None, diseases=()):
    # 10,000 heads × 12 months at 1,200.00 元/person·year: Q = 120,000 × 1,200 / 12 = 12,000,000.00
    classes = classes or (ClassFigures("居民", "60周岁及以下", 10_000, 120_000, D("1200.00")),)
    return CapitationInputs(
        unit_code="YGT0001", unit_name="测试医共体", classes=tuple(classes), diseases=tuple(diseases),
        actual_inside=D(a_inside), actual_outside=D(a_outside),
        retention_bonus=D(bonus), overspend_reduction=D(reduction),
    )


def test_worked_example_surplus():
    # Q 12,000,000.00 − A 11,000,000.00 (10,500,000 inside + 500,000 outside) = S 1,000,000.00
    # alliance 85% = 850,000.00, fund 150,000.00; E = A + 850,000 = 11,850,000.00; paid = A → +850,000.00
    out = compute_capitation(inputs("10500000.00", "500000.00"), HUZHOU, D("0"))
    assert out.quota == D("12000000.00")
    assert out.actual == D("11000000.00")
    assert out.surplus == D("1000000.00")
    assert out.unit_part == D("850000.00")
    assert out.fund_part == D("150000.00")
    assert out.entitled == D("11850000.00")
    assert out.paid == D("11000000.00")
    assert out.amount == D("850000.00")
    assert out.details["actual_inside"] == "10500000.00" and out.details["actual_outside"] == "500000.00"


def test_worked_example_surplus_with_bonus():
    # retention 85% + 5 points = 90% of 1,000,000.00 = 900,000.00
    out = compute_capitation(inputs("11000000.00", bonus="5"), HUZHOU, D("0"))
    assert out.unit_part == D("900000.00")
    assert out.fund_part == D("100000.00")
    assert out.amount == D("900000.00")


def test_worked_example_overspend():
    # A 13,000,000.00: O = 1,000,000.00; alliance bears 85% = 850,000.00 (refund), fund 150,000.00
    out = compute_capitation(inputs("13000000.00"), HUZHOU, D("0"))
    assert out.surplus == D("-1000000.00")
    assert out.unit_part == D("-850000.00")
    assert out.fund_part == D("-150000.00")
    assert out.entitled == D("12150000.00")  # A − 850,000
    assert out.amount == D("-850000.00")


def test_worked_example_overspend_with_bonus():
    # share 85% − 5 points = 80%: alliance refunds 800,000.00, fund bears 200,000.00
    out = compute_capitation(inputs("13000000.00", reduction="5"), HUZHOU, D("0"))
    assert out.unit_part == D("-800000.00")
    assert out.fund_part == D("-200000.00")
    assert out.amount == D("-800000.00")


def test_bonus_is_capped_by_the_policy():
    # 8 points entered, policy caps at 5: 90% of 1,000,000.00, not 93%
    out = compute_capitation(inputs("11000000.00", bonus="8"), HUZHOU, D("0"))
    assert out.unit_part == D("900000.00")
    assert out.details["retention_used"] == "0.90"


def test_payments_reduce_the_year_end_amount():
    # Had 100,000.00 been paid out as payments rows, the year-end is 850,000 − 100,000 = 750,000.00
    out = compute_capitation(inputs("11000000.00"), HUZHOU, D("100000.00"))
    assert out.paid == D("11100000.00")
    assert out.amount == D("750000.00")


def test_disease_standards_add_all_and_highest_only():
    # 100 heads × 12 months at 600.00: base 100 × 12 × 600 / 12 = 60,000.00
    # diseases: D1 at 1,200.00 for 24 person-months = 2,400.00; D2 at 2,400.00 for 12 pm = 2,400.00
    # add_all: 60,000 + 2,400 + 2,400 = 64,800.00
    # highest_only: the 12 months in which D2 is highest count D2 only (gather attributes 12 pm to D2
    # and 12 pm to D1): 60,000 + 12 × 1,200 / 12 + 12 × 2,400 / 12 = 60,000 + 1,200 + 2,400 = 63,600.00
    classes = (ClassFigures("职工", "60周岁以上", 100, 1200, D("600.00")),)
    diseases = (
        DiseaseFigures("职工", "60周岁以上", "D1", "高血压", 2, 24, 12, D("1200.00")),
        DiseaseFigures("职工", "60周岁以上", "D2", "糖尿病", 1, 12, 12, D("2400.00")),
        DiseaseFigures("职工", "60周岁以上", "D3", "无标准病", 1, 5, 0, None),
    )
    add_all = compute_capitation(inputs("0", classes=classes, diseases=diseases), HUZHOU, D("0"))
    assert add_all.quota == D("64800.00")
    assert any("无标准病" in w and "5人·月" in w for w in add_all.warnings)
    highest = compute_capitation(
        inputs("0", classes=classes, diseases=diseases), CapitationParams(disease_add_mode="highest_only"), D("0"),
    )
    assert highest.quota == D("63600.00")


def test_quota_is_rounded_once_half_up():
    # 1 head × 1 month at 100.10 → 100.10 / 12 = 8.341666… → 8.34; 5 pm at 1.00 → 0.4166… → 0.42
    classes = (ClassFigures("居民", "60周岁及以下", 1, 1, D("100.10")),)
    assert compute_capitation(inputs("0", classes=classes), HUZHOU, D("0")).quota == D("8.34")
    # two classes summed before rounding: (1 × 0.06 + 1 × 0.06) / 12 = 0.01 exactly, while each
    # class alone (0.005) would round to 0.01 and add up to 0.02
    classes = (
        ClassFigures("居民", "60周岁及以下", 1, 1, D("0.06")),
        ClassFigures("职工", "60周岁及以下", 1, 1, D("0.06")),
    )
    assert compute_capitation(inputs("0", classes=classes), HUZHOU, D("0")).quota == D("0.01")


money = st.decimals(min_value=D("0"), max_value=D("99999999.99"), places=2, allow_nan=False, allow_infinity=False)
ratio = st.decimals(min_value=D("0"), max_value=D("1"), places=4, allow_nan=False, allow_infinity=False)
points = st.decimals(min_value=D("0"), max_value=D("20"), places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    pm=st.integers(min_value=0, max_value=2_000_000), standard=money, a_in=money, a_out=money, paid=money,
    retention=ratio, share=ratio, bonus=points, reduction=points,
)
def test_identities_hold_for_any_figures(pm, standard, a_in, a_out, paid, retention, share, bonus, reduction):
    params = CapitationParams(retention=retention, overspend_share=share)
    classes = (ClassFigures("居民", "60周岁及以下", 1, pm, standard),)
    out = compute_capitation(inputs(a_in, a_out, bonus, reduction, classes=classes), params, paid)
    assert out.surplus == out.quota - out.actual
    assert out.unit_part + out.fund_part == out.surplus
    # E − A = the unit's part; year-end = unit part − payments rows (A counts as paid)
    assert out.entitled - out.actual == out.unit_part
    assert out.amount == out.unit_part - paid
    # the unit never keeps more than S nor bears more than O, and all figures are in 分
    assert abs(out.unit_part) <= abs(out.surplus)
    assert (out.unit_part >= 0) == (out.surplus >= 0) or out.unit_part == 0
    for value in (out.quota, out.actual, out.unit_part, out.fund_part, out.entitled, out.amount):
        assert value == value.quantize(D("0.01"))


@pytest.mark.parametrize("bad", [{"retention": "1.5"}, {"retention": 0.85}, {"disease_add_mode": "max"}, {"unknown": 1}])
def test_parameters_are_validated_in_chinese(bad):
    from django.core.exceptions import ValidationError

    from settlement.engine.params import defaults_of, from_json

    data = {**defaults_of(CapitationParams), **bad}
    with pytest.raises(ValidationError) as info:
        from_json(CapitationParams, data)
    text = "".join(info.value.messages)
    assert any(word in text for word in ("不能大于", "字符串", "无效", "未知参数"))


def test_parameters_round_trip_as_strings():
    from settlement.engine.params import from_json, to_json

    data = to_json(CapitationParams(retention=D("0.8000")))
    assert data["retention"] == "0.8000" and data["visit_types"] == ["普通门诊", "慢病门诊"]
    assert from_json(CapitationParams, data) == CapitationParams(retention=D("0.8000"))


@settings(max_examples=500, deadline=None)
@given(birth=st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2025, 12, 31)),
       year=st.integers(min_value=2000, max_value=2030))
def test_sql_age_band_cutoff_agrees_with_age_on(birth, year):
    from contracts.validators import age_on
    from settlement.engine.schemes.capitation import band_cutoff

    # the gather's SQL puts a person in 60周岁及以下 exactly when birth_date > band_cutoff(year)
    assert (birth > band_cutoff(year)) == (age_on(birth, datetime.date(year, 1, 1)) <= 60)


BY_SCORE = CapitationParams(bonus_from_score=True, bonus_pass_score=D("60"))


def scored(a_inside, score, bonus="0", reduction="0"):
    return dataclasses.replace(inputs(a_inside, bonus=bonus, reduction=reduction), score=D(score))


@pytest.mark.parametrize("score, unit_part", [
    # Q 12,000,000.00, A 11,000,000.00, S 1,000,000.00; points = 5 × (score − 60) / 40, capped to 0..5
    ("100", "900000.00"),  # 5 points: 90% → 900,000.00 (the SPEC example with bonus +5)
    ("80", "875000.00"),   # 2.5 points: 87.5% → 875,000.00
    ("60", "850000.00"),   # 0 points at the pass score
    ("45", "850000.00"),   # below the pass score: never below the base 85%
])
def test_score_sets_the_retention_bonus_when_the_policy_says_so(score, unit_part):
    assert compute_capitation(scored("11000000.00", score), BY_SCORE, D("0")).unit_part == D(unit_part)


def test_score_lowers_the_overspend_share_when_the_policy_says_so():
    # A 13,000,000.00: O 1,000,000.00; score 90 → 3.75 points → share 81.25% → the alliance bears 812,500.00
    out = compute_capitation(scored("13000000.00", "90"), BY_SCORE, D("0"))
    assert out.unit_part == D("-812500.00")
    assert out.fund_part == D("-187500.00")


def test_entered_points_apply_unless_the_policy_converts_the_score():
    # Policy off: the 5 points entered on the row count, the score of 60 does not.
    assert compute_capitation(scored("11000000.00", "60", bonus="5"), HUZHOU, D("0")).unit_part == D("900000.00")
    # Policy on: the score decides and the entered points are ignored.
    assert compute_capitation(scored("11000000.00", "60", bonus="5"), BY_SCORE, D("0")).unit_part == D("850000.00")
