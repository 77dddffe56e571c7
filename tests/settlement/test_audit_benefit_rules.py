"""BEN01 and REL01 (SPEC §9) over the benefit engine's stored 应付统筹 (SPEC §6.8), on hand-made rows:
what fires, the nearest row that must not, and the 涉及金额 worked out by hand."""
from decimal import Decimal as D

import pytest

from settlement.benefits.selectors import differing
from settlement.benefits.services import compute_expected
from tests import factories
from tests.settlement import benefit_builders as b
from tests.settlement.audit_builders import audit
from tests.settlement.benefit_builders import YEAR, day

pytestmark = pytest.mark.django_db


@pytest.fixture
def place():
    return b.place()


def _resident(place):
    return factories.person(place["wuxing"])


# --- BEN01 -------------------------------------------------------------------------------------


def test_benefit_mismatch_fires_beyond_one_fen_either_way(place):
    b.approved_table()
    # 基层 outpatient, 起付 0, 80%: in-scope 200.00 → 应付统筹 160.00 for each (one person each, so no
    # shared deductible or 年度限额).
    exact = b.claim(_resident(place), place["基层"], day(3, 1), "200.00", fund="160.00")
    one_fen = b.claim(_resident(place), place["基层"], day(3, 1), "200.00", fund="160.01")
    over = b.claim(_resident(place), place["基层"], day(3, 1), "200.00", fund="160.02")
    under = b.claim(_resident(place), place["基层"], day(3, 1), "200.00", fund="159.98")
    # 二级 inpatient, 起付 600, 70%: (10,000.00 − 600) × 70% = 6,580.00; reported 6,600.00.
    stay = b.case(_resident(place), place["二级"], day(4, 1), day(4, 8), "10000.00", fund="6600.00")
    compute_expected(YEAR)
    findings = audit("BEN01", YEAR)
    by_item = {f.claim or f.case: f for f in findings}
    assert set(by_item) == {over, under, stay}  # 160.01 − 160.00 = 0.01 is within the tolerance
    assert exact not in by_item and one_fen not in by_item
    assert by_item[over].amount == D("0.02")  # 160.02 − 160.00
    assert by_item[under].amount == D("-0.02")  # 159.98 − 160.00, signed
    assert by_item[stay].amount == D("20.00")  # 6,600.00 − 6,580.00
    assert by_item[stay].case_id == stay.pk and by_item[stay].claim_id is None
    assert by_item[stay].institution == place["二级"] and by_item[stay].region == place["wuxing"]
    assert "6580.00" in by_item[stay].evidence and "6600.00" in by_item[stay].evidence


def test_benefit_mismatch_is_exactly_the_benefit_engines_differing_figures(place):
    b.approved_table()
    for k in range(1, 6):
        b.claim(_resident(place), place["基层"], day(5, k), "100.00", fund=f"{80 + k - 3}.00")
    compute_expected(YEAR)
    # 应付统筹 80.00 each; reported 78, 79, 80, 81, 82: four differ.
    expected = {(f.claim_id, f.difference) for f in differing(YEAR)}
    assert len(expected) == 4
    assert {(f.claim_id, f.amount) for f in audit("BEN01", YEAR)} == expected


def test_benefit_mismatch_needs_computed_figures(place):
    b.approved_table()
    b.claim(_resident(place), place["基层"], day(3, 1), "200.00", fund="999.00")
    assert audit("BEN01", YEAR) == []  # nothing computed yet: no 应付统筹 to compare with


# --- REL01 -------------------------------------------------------------------------------------


def test_revoked_relocation_sums_the_out_of_city_differences(place):
    b.approved_table()
    person = place["resident"]
    b.relocation(person, day(1, 10), "460100")
    b.relocation(person, day(9, 1), "460100")
    # Out of city, revoked: 居民 二级 outpatient 起付 200, 60% − 20 points = 40%:
    # (1,200.00 − 200) × 40% = 400.00; reported as relocated (60%) 600.00 → +200.00.
    away = b.claim(person, place["haikou_secondary"], day(10, 5), "1200.00", fund="600.00")
    # 二级 inpatient 起付 600, 70% − 20 = 50%: (10,600.00 − 600) × 50% = 5,000.00; reported 7,000.00 → +2,000.00.
    stay = b.case(person, place["haikou_secondary"], day(11, 1), day(11, 9), "10600.00", fund="7000.00")
    # In the city (三级, 起付 300, 50%): (500.00 − 300) × 50% = 100.00; reported 150.00: a BEN01 matter,
    # not a relocation one.
    b.claim(person, place["三级"], day(6, 1), "500.00", fund="150.00")
    compute_expected(YEAR)
    (finding,) = audit("REL01", YEAR)
    assert finding.person == person and finding.institution is None and finding.region == place["wuxing"]
    assert finding.amount == D("2200.00")  # 200.00 + 2,000.00
    assert finding.evidence_data["claim_ids"] == [away.pk] and finding.evidence_data["case_ids"] == [stay.pk]
    assert len(finding.evidence_data["relocation_ids"]) == 2
    assert f"{YEAR}-01-10" in finding.evidence and f"{YEAR}-09-01" in finding.evidence
    assert finding.severity == "违规" and finding.rule_name == "异地安置待遇取消"


def test_revoked_relocation_without_out_of_city_claims_is_a_finding_of_0(place):
    person = place["resident"]
    b.relocation(person, day(2, 1), "460100")
    b.relocation(person, day(2, 2), "460100")
    (finding,) = audit("REL01", YEAR)
    assert finding.amount == D("0.00")


def test_relocation_filings_count_per_calendar_year(place):
    # One filing in the year: no finding, even with another filed days earlier in the previous year.
    across = _resident(place)
    b.relocation(across, day(1, 2).replace(year=YEAR - 1, month=12, day=28), "460100")
    b.relocation(across, day(1, 3), "460100")
    # Two filings, both in the previous year.
    earlier = _resident(place)
    b.relocation(earlier, day(3, 1).replace(year=YEAR - 1), "460100")
    b.relocation(earlier, day(6, 1).replace(year=YEAR - 1), "460100")
    assert audit("REL01", YEAR) == []
    (finding,) = audit("REL01", YEAR - 1)
    assert finding.person == earlier
