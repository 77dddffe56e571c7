"""SPEC §3: every inpatient case goes to exactly one scheme, first match wins."""
import datetime

import pytest

from alliances.models import InstitutionLevel
from settlement.engine.base import RunContext, get_rule
from settlement.engine.schemes.inpatient_common import case_schemes, length_of_stay
from tests import factories
from tests.settlement.inpatient_builders import D, bed_day_quota, budget, case, disease_standard, group

YEAR = (datetime.date(2025, 1, 1), datetime.date(2025, 12, 31))


@pytest.mark.parametrize(("admission", "discharge", "days"), [
    ("2025-03-01", "2025-03-01", 1),  # same day counts one day
    ("2025-03-01", "2025-03-02", 1),
    ("2025-02-27", "2025-03-02", 3),
    ("2024-12-31", "2025-01-01", 1),
])
def test_length_of_stay(admission, discharge, days):
    assert length_of_stay(datetime.date.fromisoformat(admission), datetime.date.fromisoformat(discharge)) == days


@pytest.fixture
def hospital(county):
    inst = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    disease_standard("K35.8", InstitutionLevel.SECONDARY, "6000.00", operation="47.09")
    disease_standard("I63.9", InstitutionLevel.TERTIARY, "9000.00")  # another level only
    disease_standard("N20.0", InstitutionLevel.SECONDARY, "4000.00", year=2024)  # another year only
    return inst


def test_first_match_wins(hospital):
    person = factories.person()
    both = case(hospital, person, "2025-03-01", "2025-03-20", bed_day="精神", diagnosis="K35.8", operation="47.09",
                drg="G01")
    disease = case(hospital, person, "2025-04-01", "2025-04-05", diagnosis="K35.8", operation="47.09", drg="G01")
    other_operation = case(hospital, person, "2025-05-01", "2025-05-05", diagnosis="K35.8", operation="47.01")
    other_level = case(hospital, person, "2025-06-01", "2025-06-05", diagnosis="I63.9")
    other_year = case(hospital, person, "2025-07-01", "2025-07-05", diagnosis="N20.0")
    plain = case(hospital, person, "2025-08-01", "2025-08-05", drg="G01")
    assert case_schemes(*YEAR) == {
        both.pk: "bed_day",  # 床日类别 beats a per-disease standard
        disease.pk: "disease",  # a standard for this diagnosis + operation at this level
        other_operation.pk: "drg",  # only an exact-operation standard exists
        other_level.pk: "drg",
        other_year.pk: "drg",
        plain.pk: "drg",
    }


def test_empty_operation_standard_matches_any_operation_when_no_exact_one(hospital):
    disease_standard("K35.8", InstitutionLevel.SECONDARY, "5000.00")
    person = factories.person()
    exact = case(hospital, person, "2025-04-01", "2025-04-05", diagnosis="K35.8", operation="47.09")
    other = case(hospital, person, "2025-05-01", "2025-05-05", diagnosis="K35.8", operation="47.01")
    none = case(hospital, person, "2025-06-01", "2025-06-05", diagnosis="K35.8")
    assert set(case_schemes(*YEAR).values()) == {"disease"}
    from settlement.engine.schemes.disease import DiseaseParams, gather_disease

    lines = gather_disease(RunContext("disease", 2025), DiseaseParams())[hospital.code].lines
    # Personal 200 each (builder default): 6,000 − 200 for the exact match, 5,000 − 200 twice.
    assert lines[0].standard_payment == D("5800.00") + D("4800.00") * 2
    assert {exact.pk, other.pk, none.pk} == set(case_schemes(*YEAR))


def test_each_case_is_settled_by_exactly_one_scheme(hospital):
    """Σ 统筹支付 over the three schemes' A equals the cases' total: nothing counted twice or lost."""
    person = factories.person()
    group("G01", "100.0000")
    budget("330502-二级及以上", "1000.00")
    bed_day_quota(InstitutionLevel.SECONDARY, "精神", "200.00")
    case(hospital, person, "2025-03-01", "2025-03-20", bed_day="精神", diagnosis="K35.8", operation="47.09",
         drg="G01", total="3000.00", personal="100.00")
    case(hospital, person, "2025-04-01", "2025-04-05", diagnosis="K35.8", operation="47.09", drg="G01",
         total="5000.00", personal="300.00")
    case(hospital, person, "2025-05-01", "2025-05-05", drg="G01", total="7000.00", personal="700.00")
    actual = {}
    for scheme in ("bed_day", "disease", "drg"):
        rule = get_rule(scheme)
        ctx = RunContext(scheme, 2025)
        params = rule.params_class()
        (inputs,) = rule.gather(ctx, params).values()
        actual[scheme] = rule.compute(inputs, params, D("0")).actual
    assert actual == {"bed_day": D("2900.00"), "disease": D("4700.00"), "drg": D("6300.00")}
