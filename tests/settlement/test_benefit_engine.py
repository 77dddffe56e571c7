"""应付统筹 (SPEC §6.8): the worked example figure by figure, deductible and limit in date order,
the most specific rule, joined stays, referrals, cross-county, out of city and relocation."""
from decimal import Decimal as D

import pytest

from settlement.approval import Refused
from settlement.benefits.models import BenefitFigure
from settlement.benefits.selectors import derivation
from settlement.benefits.services import compute_expected
from tests.settlement import benefit_builders as b
from tests.settlement.benefit_builders import YEAR, day

pytestmark = pytest.mark.django_db


@pytest.fixture
def place():
    return b.place()


def figure(row):
    # Only differing figures are stored; every claim's and case's derivation is re-derived (issue 14).
    return derivation(row)


def test_spec_worked_example_figure_by_figure(place):
    b.approved_table()
    person = place["resident"]
    first = b.case(person, place["二级"], day(3, 1), day(3, 10), "10000.00", fund="6580.00")
    b.referral(person, place["二级"], place["三级"], day(3, 10), "上转")
    second = b.case(person, place["三级"], day(3, 13), day(3, 25), "20000.00", fund="11760.00")
    visit1 = b.claim(person, place["基层"], day(4, 1), "200.00", fund="160.00")
    visit2 = b.claim(person, place["基层"], day(4, 9), "250.00", fund="140.00")
    counts = compute_expected(YEAR)
    assert (counts["claims"], counts["cases"], counts["differing"]) == (2, 2, 0)

    one = figure(first)
    # (10,000.00 − 600) × 70% = 6,580.00
    assert (one.deductible, one.deductible_used, one.ratio, one.expected) == (D("600"), D("600"), D("70"), D("6580.00"))
    assert one.joined_case_id is None
    two = figure(second)
    # joined: deductible max(0, 1,000 − 600) = 400; (20,000.00 − 400) × 60% = 11,760.00
    assert two.joined_case_id == first.pk and two.joined_deductible == D("600.00")
    assert (two.deductible, two.deductible_used, two.ratio, two.expected) == (D("1000"), D("400"), D("60"), D("11760.00"))
    # first visit 200 × 80% = 160.00; second min(250 × 80% = 200, 300 − 160 = 140) = 140.00
    assert figure(visit1).expected == D("160.00")
    v2 = figure(visit2)
    assert (v2.before_limit, v2.limit_left, v2.expected) == (D("200.00"), D("140.00"), D("140.00"))


def test_deductible_and_limit_cross_inside_one_claim(place):
    b.approved_table([
        ("居民", "门诊", "二级", "", "", "200", "60", "500"),
        ("居民", "门诊", "基层", "", "", "0", "80", None), ("居民", "住院", "基层", "", "", "0", "90", None),
    ])
    person = place["resident"]
    c1 = b.claim(person, place["二级"], day(1, 5), "150.00")
    c2 = b.claim(person, place["二级"], day(1, 6), "150.00")
    c3 = b.claim(person, place["二级"], day(2, 1), "1000.00")
    compute_expected(YEAR)
    # 150 all deductible → 0; second: 50 deductible left, (150 − 50) × 60% = 60.00
    assert [figure(c).deductible_used for c in (c1, c2, c3)] == [D("150.00"), D("50.00"), D("0.00")]
    assert figure(c1).expected == D("0.00") and figure(c2).expected == D("60.00")
    # third: 1,000 × 60% = 600.00 before the limit, 500 − 60 = 440.00 left → 440.00
    f3 = figure(c3)
    assert (f3.before_limit, f3.limit_left, f3.expected) == (D("600.00"), D("440.00"), D("440.00"))


def test_same_day_claims_follow_serial_order(place):
    b.approved_table([
        ("居民", "门诊", "二级", "", "", "100", "50", None),
        ("居民", "门诊", "基层", "", "", "0", "80", None), ("居民", "住院", "基层", "", "", "0", "90", None),
    ])
    person = place["resident"]
    later = b.claim(person, place["二级"], day(1, 5), "80.00", serial="MZ-B")
    earlier = b.claim(person, place["二级"], day(1, 5), "80.00", serial="MZ-A")
    compute_expected(YEAR)
    # MZ-A takes 80 of the 100 deductible (fund 0); MZ-B the last 20: (80 − 20) × 50% = 30.00
    assert (figure(earlier).expected, figure(later).expected) == (D("0.00"), D("30.00"))


def test_most_specific_rule_row_wins(place):
    from contracts.models import DiseaseCategory
    from tests import factories

    b.approved_table()
    person = place["resident"]
    tb = factories.disease("A15.0", DiseaseCategory.SPECIAL, "肺结核")
    hypertension = factories.disease("I10", DiseaseCategory.CHRONIC, "高血压")
    general = b.claim(person, place["基层"], day(5, 1), "100.00")
    chronic = b.claim(person, place["基层"], day(5, 2), "100.00", visit_type="慢病门诊", disease=hypertension)
    # A15 prefix beats the 慢病门诊 row as well as the general row
    tuberculosis = b.claim(person, place["基层"], day(5, 3), "100.00", visit_type="慢病门诊", disease=tb)
    compute_expected(YEAR)
    assert [figure(c).ratio for c in (general, chronic, tuberculosis)] == [D("80"), D("65"), D("75")]
    assert figure(tuberculosis).rule.disease_prefix == "A15"
    assert figure(chronic).rule.visit_type == "慢病门诊"


def test_downward_referral_adds_two_points_to_stay_and_visit(place):
    b.approved_table()
    person = place["resident"]
    b.referral(person, place["三级"], place["基层"], day(6, 1), "下转")
    visit = b.claim(person, place["基层"], day(6, 5), "100.00")
    stay = b.case(person, place["基层"], day(6, 7), day(6, 12), "3200.00")
    outside = b.claim(person, place["基层"], day(6, 20), "100.00")  # beyond the 7-day window
    compute_expected(YEAR)
    v = figure(visit)
    assert (v.referral_points, v.ratio, v.expected) == (D("2"), D("82"), D("82.00"))  # 100 × 82%
    s = figure(stay)
    # no earlier stay at the sender: own deductible 200; (3,200 − 200) × 92% = 2,760.00
    assert (s.referral_points, s.ratio, s.joined_case_id, s.expected) == (D("2"), D("92"), None, D("2760.00"))
    assert figure(outside).ratio == D("80")


def test_cross_county_and_unreferred_out_of_city(place):
    b.approved_table(cross_county_points="5")
    person = place["resident"]  # insured in 吴兴区
    home = b.claim(person, place["二级"], day(7, 1), "1200.00")
    cross = b.claim(person, place["nanxun_secondary"], day(7, 2), "1000.00")
    out = b.claim(person, place["haikou_secondary"], day(7, 3), "1000.00")
    compute_expected(YEAR)
    # home: (1,200 − 200) × 60% = 600.00; the deductible of the 二级 row is then used up
    assert figure(home).expected == D("600.00")
    c = figure(cross)
    assert (c.cross_county_points, c.out_of_city_points, c.ratio, c.expected) == (D("5"), D("0"), D("55"), D("550.00"))
    o = figure(out)
    # outside the city without a 转外 referral: 60 − 20 = 40 points; 1,000 × 40% = 400.00
    assert (o.cross_county_points, o.out_of_city_points, o.ratio, o.expected) == (D("0"), D("20"), D("40"), D("400.00"))


def test_out_of_city_with_referral_keeps_the_ordinary_ratio(place):
    b.approved_table()
    person = place["resident"]
    b.referral(person, place["三级"], place["haikou_secondary"], day(8, 1), "转外")
    inside = b.claim(person, place["haikou_secondary"], day(10, 29), "1200.00")  # day 89 of 90
    after = b.claim(person, place["haikou_secondary"], day(11, 5), "1000.00")  # day 96
    compute_expected(YEAR)
    assert (figure(inside).out_of_city_points, figure(inside).expected) == (D("0"), D("600.00"))
    assert (figure(after).out_of_city_points, figure(after).ratio) == (D("20"), D("40"))


def test_relocation_in_force_is_in_city_until_a_second_filing_revokes_it(place):
    b.approved_table()
    person = place["resident"]
    b.relocation(person, day(1, 10), "460100")
    claim = b.claim(person, place["haikou_secondary"], day(3, 1), "1200.00")
    compute_expected(YEAR)
    f = figure(claim)
    assert (f.out_of_city_points, f.ratio, f.expected) == (D("0"), D("60"), D("600.00"))
    assert f.relocation == "安置地460100，按市内待遇"

    b.relocation(person, day(9, 1), "460100")  # a second filing in the year revokes the whole year
    compute_expected(YEAR)
    f = figure(claim)
    assert (f.out_of_city_points, f.ratio, f.expected) == (D("20"), D("40"), D("400.00"))
    assert f.relocation == "当年度备案2次及以上，异地安置待遇已取消"


def test_recompute_replaces_previous_figures(place):
    b.approved_table()
    person = place["resident"]
    claim = b.claim(person, place["基层"], day(2, 1), "100.00", fund="80.00")
    compute_expected(YEAR)
    b.claim(person, place["基层"], day(2, 2), "100.00", fund="50.00")
    counts = compute_expected(YEAR)
    assert BenefitFigure.objects.filter(year=YEAR).count() == 2
    assert counts == {"claims": 2, "cases": 0, "differing": 1, "unruled": 0}
    assert figure(claim).difference == D("0.00")


def test_claims_without_a_rule_are_listed_not_guessed(place):
    b.approved_table()
    employee = b.factories.person(place["wuxing"], insurance_type="职工")
    claim = b.claim(employee, place["基层"], day(2, 1), "100.00", fund="80.00")  # no 职工 基层 row
    counts = compute_expected(YEAR)
    assert counts["unruled"] == 1 and figure(claim).expected is None and figure(claim).rule_id is None


def test_needs_an_approved_table(place):
    b.rules()
    b.policy()
    with pytest.raises(Refused, match="待遇政策表尚未审批"):
        compute_expected(YEAR)


def test_one_claim_crosses_both_the_deductible_and_the_limit(place):
    b.approved_table([
        ("居民", "门诊", "二级", "", "", "200", "60", "100"),
        ("居民", "门诊", "基层", "", "", "0", "80", None), ("居民", "住院", "基层", "", "", "0", "90", None),
    ])
    person = place["resident"]
    first = b.claim(person, place["二级"], day(3, 1), "150.00")
    second = b.claim(person, place["二级"], day(3, 2), "500.00")
    compute_expected(YEAR)
    assert (figure(first).deductible_used, figure(first).expected) == (D("150.00"), D("0.00"))
    f = figure(second)
    # the last 50 of the deductible, then (500 − 50) × 60% = 270.00, capped by the 100.00 limit
    assert (f.deductible_used, f.before_limit, f.limit_left, f.expected) == (D("50.00"), D("270.00"), D("100.00"), D("100.00"))


def _with_deductible(rows, key, deductible):
    return [(*row[:5], deductible, *row[6:]) if row[:3] == key else row for row in rows]


def test_referral_joins_a_december_stay_to_a_january_one(place):
    import datetime

    from settlement.benefits.services import revise_table

    # 2024: the 居民 二级 inpatient deductible was 500; 2025: 600 (the CONFORMANT table).
    b.approved_table(_with_deductible(b.CONFORMANT, ("居民", "住院", "二级"), "500"), year=2024)
    b.approved_table()
    person = place["resident"]
    december = b.case(person, place["二级"], datetime.date(2024, 12, 20), datetime.date(2024, 12, 28), "10000.00")
    b.referral(person, place["二级"], place["三级"], datetime.date(2024, 12, 28), "上转")
    january = b.case(person, place["三级"], datetime.date(2025, 1, 2), datetime.date(2025, 1, 10), "20000.00")
    counts = compute_expected(YEAR)
    assert counts["cases"] == 1  # the December stay is 2024's, only read for its deductible
    f = figure(january)
    # joined across New Year: the December stay charged min(500, 10,000.00) = 500 under 2024's table;
    # deductible max(0, 1,000 − 500) = 500; (20,000.00 − 500) × 60% = 11,700.00
    assert (f.joined_case_id, f.joined_deductible) == (december.pk, D("500.00"))
    assert (f.deductible, f.deductible_used, f.ratio, f.expected) == (D("1000"), D("500"), D("60"), D("11700.00"))

    # Without an approved 2024 table the December stay's deductible is unknown: no join,
    # (20,000.00 − 1,000) × 60% = 11,400.00.
    revise_table(2024)
    compute_expected(YEAR)
    f = figure(january)
    assert (f.joined_case_id, f.deductible_used, f.expected) == (None, D("1000.00"), D("11400.00"))


def test_a_stay_after_the_window_or_before_the_referral_is_not_joined(place):
    import datetime

    b.approved_table(year=2024)
    b.approved_table()
    person = place["resident"]
    b.case(person, place["二级"], datetime.date(2024, 12, 20), datetime.date(2024, 12, 28), "10000.00")
    b.referral(person, place["二级"], place["三级"], datetime.date(2024, 12, 28), "上转")
    # admitted 8 days after the referral: outside the 7-day window
    late = b.case(person, place["三级"], datetime.date(2025, 1, 5), datetime.date(2025, 1, 12), "20000.00")
    compute_expected(YEAR)
    f = figure(late)
    # (20,000.00 − 1,000) × 60% = 11,400.00
    assert (f.joined_case_id, f.expected) == (None, D("11400.00"))
