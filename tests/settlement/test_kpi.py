"""KPIs of the global budget on a hand-built county (figures worked out by hand in comments)."""
import datetime
from decimal import Decimal

import pytest

from alliances.models import Alliance, Institution, InstitutionLevel, Kpi, KpiTarget, Membership, Region
from contracts.models import InsuranceType, PersonStatus
from settlement.analysis import kpis
from settlement.models import InpatientCase, OutpatientClaim, VisitType
from tests import factories

D = Decimal
d = datetime.date


def claim(person, inst, day, total, personal, referral=False, visit_type=VisitType.GENERAL):
    return OutpatientClaim.objects.create(
        institution=inst, serial=f"C{OutpatientClaim.objects.count() + 1}", person=person, visit_date=day,
        insurance_type=person.insurance_type, visit_type=visit_type, total_cost=D(total),
        fund_paid=D(total) - D(personal), personal_paid=D(personal), referral=referral,
    )


def case(person, inst, admitted, discharged, total, personal, bed_day="", transferred=False):
    return InpatientCase.objects.create(
        institution=inst, serial=f"K{InpatientCase.objects.count() + 1}", person=person, admission_date=admitted,
        discharge_date=discharged, principal_diagnosis="I10", total_cost=D(total), fund_paid=D(total) - D(personal),
        personal_paid=D(personal), bed_day_category=bed_day, transferred=transferred,
    )


@pytest.fixture
def county_data(county, other_county):
    """County X (吴兴区) with alliance A = {H2 lead, G1; P1 from 2025-07-01}; P2 outside; T3 in county Y."""
    h2 = factories.institution(county=county, level=InstitutionLevel.SECONDARY, name="H2")
    g1 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS, name="G1")
    p1 = factories.institution(county=county, level=InstitutionLevel.PRIMARY, name="P1")
    p2 = factories.institution(county=county, level=InstitutionLevel.PRIMARY, name="P2")
    t3 = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY, name="T3")
    alliance = factories.alliance(lead=h2, members=[g1])
    Membership.objects.create(alliance=alliance, institution=p1, joined_on=d(2025, 7, 1))

    person = lambda **kw: factories.person(county=county, **kw)  # noqa: E731
    x1, x2, x3, x4 = person(), person(), person(), person()
    x5 = person(insurance_type=InsuranceType.EMPLOYEE)
    x6 = person()
    x6.status = PersonStatus.SUSPENDED
    x6.save()
    y1 = factories.person(county=other_county)

    # 2025 outpatient claims.
    claim(x1, g1, d(2025, 1, 5), "100", "30")
    claim(x1, g1, d(2025, 2, 5), "100", "30")
    claim(x2, p1, d(2025, 3, 1), "50", "20")  # P1 not yet a member of A
    claim(x2, p1, d(2025, 8, 1), "80", "24")  # P1 a member of A
    claim(x3, h2, d(2025, 4, 1), "300", "90", referral=True)
    claim(x4, t3, d(2025, 5, 1), "500", "200")  # X resident treated in county Y
    claim(y1, h2, d(2025, 6, 1), "200", "60")  # Y resident treated in X
    # 2025 inpatient cases (a case belongs to its discharge year).
    case(x1, h2, d(2025, 3, 1), d(2025, 3, 6), "5000", "1500", transferred=True)
    case(x5, t3, d(2025, 4, 1), d(2025, 4, 11), "10000", "2000", transferred=True)
    case(x2, g1, d(2025, 5, 1), d(2025, 5, 21), "4000", "800", bed_day="康复")  # 20 days
    case(x3, g1, d(2025, 6, 1), d(2025, 6, 1), "300", "60", bed_day="康复")  # same day: 1 day
    # 2024, for growth: G1 claims 100 + 150, H2 case 8,750 → previous total 9,000.
    claim(x1, g1, d(2024, 3, 1), "100", "30")
    claim(x1, g1, d(2024, 4, 1), "150", "45")
    case(x1, h2, d(2024, 12, 20), d(2025, 1, 3), "0", "0")  # discharged 2025: counts in 2025, adds 0
    case(x1, h2, d(2024, 6, 1), d(2024, 6, 10), "8750", "2000")

    # Contracts (signing rate at 2025-12-31).
    factories.contract(x1, g1, d(2025, 2, 1), verified_on=d(2025, 2, 10))  # counts (county, A)
    factories.contract(x2, p2, d(2025, 3, 1), verified_on=d(2025, 3, 5))  # counts (county only)
    factories.contract(x3, h2, d(2025, 1, 1))  # never verified
    factories.contract(x4, g1, d(2024, 1, 1), end=d(2025, 6, 30), verified_on=d(2024, 1, 5))  # ended
    factories.contract(x5, g1, d(2025, 12, 31), verified_on=d(2025, 12, 31))  # in force on the last day
    factories.contract(x6, g1, d(2025, 1, 1), verified_on=d(2025, 1, 2))  # suspended person
    factories.contract(y1, h2, d(2025, 1, 1), verified_on=d(2025, 1, 2))  # insured elsewhere
    return {"alliance": alliance, "X": county, "Y": other_county, "g1": g1}


@pytest.fixture
def aggregated(county_data):
    """The dashboard reads the KPI pre-aggregates: built here from the ORM-created rows above."""
    from settlement.kpi_aggregates.services import rebuild_year

    for year in (2024, 2025):
        rebuild_year(year)
    return county_data


def test_county_kpis(county_data):
    figures = kpis.county_kpis(2025, Region.objects.filter(pk__in=[county_data["X"].pk, county_data["Y"].pk]))
    x = figures[county_data["X"].pk].values
    # X residents: visits x1×2 (G1), x2×2 (P1), x3 (H2), x4 (T3 in Y) = 6, in county 5, at 一级/基层 4;
    # stays x1 (H2) ×2 incl. the 2025-01-03 discharge, x5 (T3), x2 (G1), x3 (G1) = 5, in county 4.
    assert x["county_visit_rate"] == D("81.82")  # (5 + 4) / (6 + 5) = 9/11 = 81.818…
    assert x["grassroots_visit_rate"] == D("66.67")  # 4 / 6
    # Care at X's institutions 2025: claims 200 + 50 + 80 + 300 + 200 = 830 (personal 254);
    # cases 5000 + 0 + 4000 + 300 = 9300 (personal 2360) → 10,130, personal 2,614.
    assert x["personal_burden"] == D("25.80")  # 2614 / 10130 = 0.258045…
    assert x["total_cost_growth"] == D("12.56")  # (10130 − 9000) / 9000 = 12.555…%
    # Mean claim 830 / 6 = 138.333… against 250 / 2 = 125 → +10.666…%.
    assert x["outpatient_cost_growth"] == D("10.67")
    # x1 (G1), x2 (P2), x5 (G1, from 31 Dec) of 5 active X residents (x6 suspended, y1 elsewhere).
    assert x["signing_rate"] == D("60.00")
    assert x["referrals"] == 2  # x3's referred claim + x1's transferred stay
    # Bed-day cases at X: 20 + 1 = 21 days, 4,300 元 → 10.50 days, 4300 / 21 = 204.7619…
    assert x["bed_day_average_stay"] == D("10.50")
    assert x["bed_day_daily_cost"] == D("204.76")
    assert x["disease_exit_rate"] is None  # hook until exit requests exist

    y = figures[county_data["Y"].pk].values
    assert y["county_visit_rate"] == D("0.00")  # y1's one visit was in X
    assert y["signing_rate"] == D("0.00")  # y1 signed in X, not at home
    assert y["personal_burden"] == D("20.95")  # T3: (200 + 2000) / (500 + 10000) = 0.20952…
    assert y["total_cost_growth"] is None  # no 2024 care at T3
    assert y["referrals"] == 1
    assert y["bed_day_average_stay"] is None


def test_alliance_kpis_count_members_on_the_day_of_care(county_data):
    figures = kpis.alliance_kpis(2025, Alliance.objects.filter(pk=county_data["alliance"].pk))
    a = figures[county_data["alliance"].pk]
    # Population KPIs are the county's.
    assert a.values["county_visit_rate"] == D("81.82")
    assert a.values["grassroots_visit_rate"] == D("66.67")
    # A's care: G1 200 (60), P1 only the August 80 (24), H2 500 (150); cases 9300 (2360)
    # → total 10,080, personal 2,594; claims 2 + 1 + 2 = 5.
    assert a.inputs["total_cost"] == D("10080")
    assert a.values["personal_burden"] == D("25.73")  # 2594 / 10080 = 0.257341…
    assert a.values["total_cost_growth"] == D("12.00")  # (10080 − 9000) / 9000
    assert a.values["outpatient_cost_growth"] == D("24.80")  # 780 / 5 = 156 vs 125 → +24.8%
    # x1 (G1) and x5 (G1); x2 signed with P2, which is not a member.
    assert a.values["signing_rate"] == D("40.00")
    assert a.values["referrals"] == 2
    assert a.values["bed_day_average_stay"] == D("10.50")
    assert a.values["disease_exit_rate"] is None


def test_institution_kpis(county_data):
    g1 = county_data["g1"]
    values = kpis.institution_kpis(2025, Institution.objects.filter(pk=g1.pk))[g1.pk].values
    # G1: claims 200 (60), cases 4000 (800) + 300 (60) → 920 / 4500 = 0.20444…
    assert values["personal_burden"] == D("20.44")
    assert values["total_cost_growth"] == D("1700.00")  # (4500 − 250) / 250


def test_no_data_gives_none_not_zero(county):
    figures = kpis.county_kpis(2025, Region.objects.filter(pk=county.pk))[county.pk].values
    assert figures["county_visit_rate"] is None
    assert figures["personal_burden"] is None
    assert figures["signing_rate"] is None  # nobody insured
    assert figures["referrals"] is None  # no care in the year: 无数据, not a count of 0 a target could call 达标


def test_seeded_targets_follow_the_kf_plan(db):
    targets = KpiTarget.for_year(2026)
    assert (targets["county_visit_rate"].comparison, targets["county_visit_rate"].target) == ("gte", D("90"))
    assert (targets["grassroots_visit_rate"].comparison, targets["grassroots_visit_rate"].target) == ("approx", D("65"))
    assert (targets["total_cost_growth"].comparison, targets["total_cost_growth"].target) == ("lte", D("8"))
    assert targets["personal_burden"].target == D("30")
    KpiTarget.objects.create(kpi=Kpi.COUNTY_VISIT_RATE, year=2026, comparison="gte", target=D("92"))
    assert KpiTarget.for_year(2026)["county_visit_rate"].target == D("92")
    assert KpiTarget.for_year(2025)["county_visit_rate"].target == D("90")


# --- Dashboard ---------------------------------------------------------------------------------


def test_dashboard_shows_budget_against_actual_and_links_resolve(aggregated, client, make_user):
    county_data = aggregated
    from settlement.models import Budget, Scheme

    alliance = county_data["alliance"]
    Budget.objects.create(year=2025, scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code, insurance_type="居民",
                          amount=D("1200.00"))
    client.force_login(make_user("city"))
    page = client.get("/admin/alliances/dashboard/?year=2025")
    assert page.status_code == 200
    body = page.content.decode()
    assert alliance.name in body and "吴兴区" in body and "南浔区" in body
    assert "月度预算：100.00 元" in body  # 1,200.00 / 12
    # A = residents of X, 普通门诊, wherever treated: 70 + 70 + 30 + 56 + 210 + 300 = 736.00
    assert "全年实际A：736.00 元" in body
    assert "81.82" in body
    # The chart's data, built in Python: A per month as exact strings, a month over B/12 flagged.
    chart = dashboard_json(body, f"budget-{alliance.pk}-data")
    assert chart["per_month"] == "100.00" and len(chart["actual"]) == 12
    assert sum(D(v) for v in chart["actual"]) == D("736.00")
    assert chart["over"] == [D(v) > D("100.00") for v in chart["actual"]]

    # Each drill-down link opens a changelist that accepts its filters.
    import re
    from html import unescape

    links = {unescape(u) for u in re.findall(r'href="(/admin/(?:settlement|contracts)/[^"]+)"', body)}
    assert any("person__county__code" in u for u in links)
    for url in links:
        assert client.get(url).status_code == 200, url
    march = next(u for u in links if "visit_date__gte=2025-03-01" in u and "alliance_a=" in u)
    listing = client.get(march).content.decode()
    serials = set(re.findall(r">(C\d+)</a>", listing))
    assert serials == {"C3"}  # x2's March visit only


def dashboard_json(body, dom_id):
    import json
    import re
    from html import unescape

    found = re.search(rf'<script id="{dom_id}" type="application/json">(.*?)</script>', body, re.S)
    assert found, dom_id
    return json.loads(unescape(found.group(1)))


def test_monthly_kpis_of_a_county_worked_by_hand(aggregated):
    from settlement.analysis.kpi_trends import MonthlyFigures

    x = aggregated["X"]
    months = MonthlyFigures(2025).county_kpis([x])
    rate = {m: months[m][x.pk].values["county_visit_rate"] for m in range(1, 13)}
    # Jan: x1's claim at G1 and x1's stay at H2 discharged 3 Jan, both in X → 2/2.
    # Mar: x2 at P1, x1's stay at H2 → 2/2.  Apr: x3 at H2 in; x5's stay at T3 (Y) out → 1/2.
    # May: x4 at T3 out; x2's stay at G1 in → 1/2.  Jul: nothing → 无数据.
    assert (rate[1], rate[3], rate[4], rate[5], rate[7]) == (D("100.00"), D("100.00"), D("50.00"), D("50.00"), None)
    # Growth against the same month of 2024, care at X's institutions: Mar 2025 = 50 (P1) + 5000 (H2) = 5050
    # against Mar 2024 = 100 (G1) → +4950.00%; Jan 2025 = 100 + 0 against nothing in Jan 2024 → 无数据.
    growth = {m: months[m][x.pk].values["total_cost_growth"] for m in (1, 3)}
    assert growth == {1: None, 3: D("4950.00")}
    # Identity: the months add up to the year.
    year = kpis.county_kpis(2025, Region.objects.filter(pk=x.pk))[x.pk].inputs
    for name in ("visits", "visits_in_county", "stays", "stays_in_county", "total_cost", "personal_paid"):
        assert sum(months[m][x.pk].inputs[name] for m in range(1, 13)) == year[name], name


def test_dashboard_trend_lines_against_the_seeded_targets(aggregated, client, make_user):
    x = aggregated["X"]
    client.force_login(make_user("city"))
    body = client.get("/admin/alliances/dashboard/?year=2025").content.decode()
    trend = dashboard_json(body, f"county-{x.pk}-county_visit_rate-data")
    # The seeded KF target: 县域内就诊率 ≥ 90; April and May (50.00) miss it, January and March (100.00) do not.
    assert (trend["target"], trend["target_text"]) == ("90.0000", "不低于（≥） 90")
    # Feb: x1's claim at G1 alone → 1/1; Jun: x3's stay at G1 → 1/1; Jul: nothing; Aug: x2 at P1 → 1/1.
    assert trend["values"][:8] == ["100.00", "100.00", "100.00", "50.00", "50.00", "100.00", None, "100.00"]
    assert [trend["missed"][m - 1] for m in (1, 3, 4, 5, 7)] == [False, False, True, True, False]
    assert trend["attainment"][3] == "55.56"  # 50 / 90
    # The table under the charts carries the same numbers, the missed months marked.
    assert '<td class="num kpi-missed">50.00</td>' in body
    # A KPI without a target gets no trend line.
    assert f"county-{x.pk}-referrals-data" not in body


def test_dashboard_is_scoped(aggregated, client, make_user):
    county_data = aggregated
    client.force_login(make_user("county", county_data["Y"].code))
    body = client.get("/admin/alliances/dashboard/?year=2025").content.decode()
    assert county_data["alliance"].name not in body
    assert "南浔区" in body and "吴兴区" not in body

    client.force_login(make_user("hospital", county_data["g1"].code))
    body = client.get("/admin/alliances/dashboard/?year=2025").content.decode()
    assert county_data["alliance"].name in body and "南浔区" not in body


def test_kpis_are_set_based_the_query_count_does_not_grow_with_units(county_data, county):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        kpis.alliance_kpis(2025, Alliance.objects.filter(pk=county_data["alliance"].pk))
    for _ in range(3):
        extra = factories.institution(county=county)
        factories.alliance(lead=extra)
        claim(factories.person(county=county), extra, d(2025, 9, 1), "10", "1")
    with CaptureQueriesContext(connection) as many:
        figures = kpis.alliance_kpis(2025, Alliance.objects.all())
    assert len(figures) == 4
    assert len(many) == len(one)


def test_two_alliances_of_a_county_split_its_population_kpis(county, other_county):
    """SPEC §6.4 Coverage in the KPIs: each insured person counts for one alliance only."""
    first_lead = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    second_lead = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    grassroots = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    outside = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY)
    first = factories.alliance(lead=first_lead)
    first.is_default = True
    first.save()
    second = factories.alliance(lead=second_lead, members=[grassroots])
    contracted, uncontracted = factories.person(county), factories.person(county)
    factories.contract(contracted, grassroots, d(2024, 1, 1), verified_on=d(2024, 1, 2))
    claim(contracted, grassroots, d(2025, 3, 1), "100.00", "10.00")  # second's: in county, 基层
    claim(contracted, outside, d(2025, 4, 1), "100.00", "10.00")  # second's: outside the county
    claim(uncontracted, first_lead, d(2025, 5, 1), "100.00", "10.00")  # the default's: in county
    figures = kpis.alliance_kpis(2025, Alliance.objects.filter(pk__in=[first.pk, second.pk]))
    # second: 1 of 2 visits in the county → 50.00; 1 of 2 at 基层 → 50.00; first: 1 of 1 → 100.00, 0 of 1.
    assert figures[second.pk].values["county_visit_rate"] == D("50.00")
    assert figures[second.pk].values["grassroots_visit_rate"] == D("50.00")
    assert figures[first.pk].values["county_visit_rate"] == D("100.00")
    assert figures[first.pk].values["grassroots_visit_rate"] == D("0.00")
    # Identity: the alliances' visits and insured add up to the county's, nobody counted twice.
    county_figures = kpis.county_kpis(2025, Region.objects.filter(pk=county.pk))[county.pk]
    for name in ("visits", "visits_in_county", "visits_primary", "insured"):
        assert figures[first.pk].inputs[name] + figures[second.pk].inputs[name] == county_figures.inputs[name], name
    assert (figures[first.pk].inputs["insured"], figures[second.pk].inputs["insured"]) == (1, 1)
