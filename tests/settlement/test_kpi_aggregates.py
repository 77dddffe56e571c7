"""The KPI pre-aggregates (settlement.kpi_aggregates) against the raw computation (settlement.analysis.kpis.RAW).

Identity tests on a seeded random city: for every county, alliance and institution, every KPI and
every input behind it read from the aggregates equals the one computed from the raw claims, cases,
contracts and persons — after a full rebuild, after imports that add and move claims and cases,
after a failed import, and after changes and deletes through the admin. Hand-worked figures of the
dashboard itself are in tests/alliances/test_kpi.py, which now reads the aggregates.
"""
import datetime
import random
import re
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from settlement.analysis import kpis
from alliances.models import Alliance, Institution, InstitutionLevel, Membership, Region
from contracts.models import InsuranceType, PersonStatus
from settlement.engine.schemes.alliance_budget import actual_by_alliance
from settlement.imports.services import import_file
from settlement.kpi_aggregates import selectors
from settlement.kpi_aggregates.models import KpiAggregateYear, KpiPopulationMonth, KpiProviderMonth
from settlement.kpi_aggregates.services import rebuild_year, refresh_months
from settlement.models import BedDayCategory, InpatientCase, OutpatientClaim, VisitType
from tests import factories
from tests.settlement.test_import_support import write_csv

D = Decimal
d = datetime.date
CLAIM_HEADERS = ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"]
CASE_HEADERS = ["病案号", "身份证号", "机构编码", "入院日期", "出院日期", "主诊断", "主手术", "DRG编码", "总费用", "统筹支付",
                "个人负担", "不完整住院", "新技术", "床日类别"]
YEARS = (2024, 2025)


def random_day(rng, year):
    return d(year, 1, 1) + datetime.timedelta(days=rng.randrange(365))


def money(rng, low, high):
    return D(rng.randrange(low * 100, high * 100)) / 100


def claim_row(rng, serial, person, inst, day):
    total = money(rng, 20, 900)
    personal = (total * D(rng.choice(["0.2", "0.3", "0.5"]))).quantize(D("0.01"))
    return OutpatientClaim(
        institution=inst, serial=serial, person=person, visit_date=day, insurance_type=person.insurance_type,
        visit_type=rng.choice([VisitType.GENERAL, VisitType.GENERAL, VisitType.CHRONIC]), total_cost=total,
        fund_paid=total - personal, personal_paid=personal, referral=rng.random() < 0.2,
    )


def case_row(rng, serial, person, inst, discharged):
    total = money(rng, 500, 30000)
    personal = (total * D("0.25")).quantize(D("0.01"))
    return InpatientCase(
        institution=inst, serial=serial, person=person, admission_date=discharged - datetime.timedelta(days=rng.randrange(0, 25)),
        discharge_date=discharged, principal_diagnosis="I10", total_cost=total, fund_paid=total - personal,
        personal_paid=personal, transferred=rng.random() < 0.15,
        bed_day_category=rng.choice(["", "", BedDayCategory.REHABILITATION, BedDayCategory.PSYCHIATRIC]),
    )


@pytest.fixture
def city(county, other_county):
    """Two counties; 吴兴区 with two alliances (A1 default), 南浔区 with one; an institution that joins
    A2 on 15 March and leaves it on 10 September 2025; random persons, contracts, claims and cases."""
    rng = random.Random(20251203)
    h = factories.institution(county=county, level=InstitutionLevel.SECONDARY, code="H33050200001")
    g = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    p = factories.institution(county=county, level=InstitutionLevel.PRIMARY)
    q = factories.institution(county=county, level=InstitutionLevel.PRIMARY)
    t = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY)
    y = factories.institution(county=other_county, level=InstitutionLevel.GRASSROOTS)
    loose = factories.institution(county=county, level=InstitutionLevel.PRIMARY)  # in no alliance
    a1 = factories.alliance(lead=h, members=[g])
    a2 = factories.alliance(lead=p)
    Alliance.objects.filter(pk=a1.pk).update(is_default=True)
    Membership.objects.create(alliance=a2, institution=q, joined_on=d(2025, 3, 15), left_on=d(2025, 9, 10))
    b = factories.alliance(lead=t, members=[y])
    institutions = [h, g, p, q, t, y, loose]

    persons = []
    for n in range(40):
        person = factories.person(
            county=county if n % 3 else other_county,
            insurance_type=InsuranceType.EMPLOYEE if n % 4 == 0 else InsuranceType.RESIDENT,
        )
        if n % 11 == 5:
            person.status = PersonStatus.SUSPENDED
            person.save()
        persons.append(person)
    for n, person in enumerate(persons):
        if n % 5 == 1:
            factories.contract(person, g, d(2024, 6, 1), verified_on=d(2024, 6, 2))
        elif n % 5 == 2:
            factories.contract(person, rng.choice([p, q]), d(2025, 4, 1), verified_on=d(2025, 4, 3))
        elif n % 5 == 3:
            factories.contract(person, t, d(2025, 1, 1), verified_on=None if n % 2 else d(2025, 1, 5))
    claims = [
        claim_row(rng, f"MZ{n:05d}", rng.choice(persons), rng.choice(institutions), random_day(rng, rng.choice(YEARS)))
        for n in range(400)
    ]
    OutpatientClaim.objects.bulk_create(claims)
    cases = [
        case_row(rng, f"ZY{n:05d}", rng.choice(persons), rng.choice(institutions), random_day(rng, rng.choice(YEARS)))
        for n in range(90)
    ]
    InpatientCase.objects.bulk_create(cases)
    return {"alliances": [a1, a2, b], "h": h, "q": q, "persons": persons, "rng": rng}


def figures(source, year):
    out = {}
    for level, fn, units in (
        ("county", kpis.county_kpis, Region.objects.filter(parent__isnull=False)),
        ("alliance", kpis.alliance_kpis, Alliance.objects.all()),
        ("institution", kpis.institution_kpis, Institution.objects.all()),
    ):
        for pk, unit in fn(year, units, source).items():
            out[(level, pk)] = (unit.values, unit.inputs)
    return out


def nonzero(by_month):
    return {key: value for key, value in by_month.items() if value}


def assert_aggregates_equal_raw(year=2025):
    raw, aggregated = figures(kpis.RAW, year), figures(selectors, year)
    assert aggregated == raw
    ids = list(Alliance.objects.values_list("pk", flat=True))
    assert nonzero(selectors.monthly_actual(year, ids)) == nonzero(actual_by_alliance(year, ids, by_month=True))
    # Identity: every claim and case of the year is in exactly one institution row.
    rows = KpiProviderMonth.objects.filter(year=year, level="institution")
    assert sum(r.claims for r in rows) == OutpatientClaim.objects.filter(visit_date__year=year).count()
    assert sum(r.cases for r in rows) == InpatientCase.objects.filter(discharge_date__year=year).count()
    return raw


def test_rebuilt_aggregates_equal_the_raw_figures(city):
    for year in YEARS:
        rebuild_year(year)
    raw = assert_aggregates_equal_raw(2025)
    assert_aggregates_equal_raw(2024)
    # The world is not degenerate: every KPI has a figure somewhere, and the mid-year member counts.
    for kpi in kpis.Kpi:
        if kpi != kpis.Kpi.DISEASE_EXIT_RATE:  # needs per-disease standards, none here
            assert any(values[kpi.value] is not None for values, _ in raw.values()), kpi
    a2 = city["alliances"][1]
    q_claims = OutpatientClaim.objects.filter(institution=city["q"], visit_date__range=(d(2025, 3, 15), d(2025, 9, 10))).count()
    assert q_claims > 0
    assert KpiAggregateYear.objects.filter(year__in=YEARS).count() == 2
    assert a2.pk in selectors.provider_sums(2025, "alliance")


def test_imports_keep_the_aggregates_equal_to_raw(city, tmp_path):
    for year in YEARS:
        rebuild_year(year)
    rng, person = city["rng"], city["persons"][1]
    moved = OutpatientClaim.objects.filter(institution=city["h"], visit_date__month__lte=6, visit_date__year=2025).first()
    assert moved is not None
    # A new month's claims through the COPY path, then one stored claim moved from its month to
    # December by a re-upload (the staging path: both months change).
    write = lambda name, headers, rows: write_csv(tmp_path / name, headers, rows)  # noqa: E731
    new_rows = [[f"NEW{n}", person.id_number, "H33050200001", f"2025-{rng.randrange(1, 13):02d}-10", "普通门诊", "",
                 "120.00", "80.00", "40.00", "否"] for n in range(5)]
    assert import_file("outpatient_claims", write("a.csv", CLAIM_HEADERS, new_rows)).created == 5
    assert_aggregates_equal_raw()
    update = [[moved.serial, moved.person.id_number, "H33050200001", "2025-12-20", "普通门诊", "", "999.00", "900.00",
               "99.00", "是"]]
    assert import_file("outpatient_claims", write("b.csv", CLAIM_HEADERS, update)).updated == 1
    assert_aggregates_equal_raw()
    cases = [["ZYNEW1", person.id_number, "H33050200001", "2025-02-01", "2025-02-11", "I10", "", "", "8000.00", "6000.00",
              "2000.00", "否", "否", "康复"]]
    assert import_file("inpatient_cases", write("c.csv", CASE_HEADERS, cases)).created == 1
    assert_aggregates_equal_raw()


def month_rows(year):
    """Every stored month row of the year, keyed by what it is about (not by its id)."""
    provider = {row[:3]: row[3:] for row in KpiProviderMonth.objects.filter(year=year).values_list(
        "month", "level", "unit_id", "claims", "claim_total", "claim_personal", "referrals", "cases", "case_total",
        "case_personal", "transfers", "bed_day_cases", "bed_days", "bed_day_total", "disease_cases", "disease_exits")}
    population = {row[:5]: row[5:] for row in KpiPopulationMonth.objects.filter(year=year).values_list(
        "month", "basis", "unit_id", "in_county", "primary", "visits", "stays", "resident_general_fund")}
    return provider, population


def test_a_staged_month_refresh_writes_the_rows_a_rebuild_writes(city):
    """The refresh after an import reads its months' claims and cases once into temporary tables;
    the rows it writes are the very rows a full rebuild (reading the tables) writes. Two years in one
    transaction, as an admin delete of claims from both would."""
    for year in YEARS:
        rebuild_year(year)
    before = {year: month_rows(year) for year in YEARS}
    changed = Q(visit_date__year=2025, visit_date__month=1) | Q(visit_date__month=7)  # 2025-01, and July of both
    OutpatientClaim.objects.filter(changed).update(total_cost=Decimal("1.00"), referral=True)
    InpatientCase.objects.filter(discharge_date__month=7).update(transferred=True)
    with transaction.atomic():
        refresh_months(2024, [7])
        refresh_months(2025, [1, 7])
        refresh_months(2025, [7])  # again in the same transaction: the staged tables do not collide
    refreshed = {year: month_rows(year) for year in YEARS}
    for year in YEARS:
        assert refreshed[year] != before[year]  # the changed months moved
        rebuild_year(year)
        assert month_rows(year) == refreshed[year]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname IN ('kpi_month_claims', 'kpi_month_cases')")
        assert cursor.fetchone()[0] == 0


def test_a_file_uploaded_again_unchanged_refreshes_no_month(city, tmp_path):
    for year in YEARS:  # 2024 too: the growth figures read the year before
        rebuild_year(year)
    person = city["persons"][1]
    rows = [[f"SAME{n}", person.id_number, "H33050200001", "2025-03-10", "普通门诊", "", "120.00", "80.00", "40.00", "否"]
            for n in range(3)]
    path = write_csv(tmp_path / "same.csv", CLAIM_HEADERS, rows)
    assert import_file("outpatient_claims", path).created == 3
    with CaptureQueriesContext(connection) as queries:
        again = import_file("outpatient_claims", path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert not [q for q in queries.captured_queries if "settlement_kpiprovidermonth" in q["sql"]]
    assert_aggregates_equal_raw()


def test_a_failed_import_changes_no_aggregate(city, tmp_path):
    rebuild_year(2025)
    before = list(KpiPopulationMonth.objects.order_by("pk").values())
    person = city["persons"][1]
    rows = [["BAD1", person.id_number, "H33050200001", "2025-03-10", "普通门诊", "", "120.00", "80.00", "40.00", "否"],
            ["BAD2", person.id_number, "H33050200001", "2025-13-10", "普通门诊", "", "120.00", "80.00", "40.00", "否"]]
    result = import_file("outpatient_claims", write_csv(tmp_path / "bad.csv", CLAIM_HEADERS, rows))
    assert not result.landed and result.bad_rows == 1
    assert list(KpiPopulationMonth.objects.order_by("pk").values()) == before


def test_admin_changes_and_deletes_keep_the_aggregates_equal_to_raw(city, client, make_user):
    for year in YEARS:
        rebuild_year(year)
    client.force_login(make_user("city"))
    claims = list(OutpatientClaim.objects.filter(visit_date__year=2025).order_by("pk")[:3])
    page = client.post(f"/admin/settlement/outpatientclaim/{claims[0].pk}/delete/", {"post": "yes"})
    assert page.status_code == 302
    assert_aggregates_equal_raw()
    page = client.post("/admin/settlement/outpatientclaim/", {
        "action": "delete_selected", "_selected_action": [c.pk for c in claims[1:]], "post": "yes",
    })
    assert page.status_code == 302 and not OutpatientClaim.objects.filter(pk__in=[c.pk for c in claims]).exists()
    assert_aggregates_equal_raw()
    case = InpatientCase.objects.filter(discharge_date__year=2025).order_by("pk").first()
    page = client.post(f"/admin/settlement/inpatientcase/{case.pk}/delete/", {"post": "yes"})
    assert page.status_code == 302
    assert_aggregates_equal_raw()


def test_dashboard_query_count_does_not_grow_with_the_data(city, client, make_user):
    for year in YEARS:
        rebuild_year(year)
    client.force_login(make_user("city"))
    with CaptureQueriesContext(connection) as small:
        assert client.get("/admin/alliances/dashboard/?year=2025").status_code == 200
    rng = city["rng"]
    institutions = list(Institution.objects.all())
    OutpatientClaim.objects.bulk_create([
        claim_row(rng, f"MORE{n:05d}", rng.choice(city["persons"]), rng.choice(institutions), random_day(rng, 2025))
        for n in range(2000)
    ])
    InpatientCase.objects.bulk_create([
        case_row(rng, f"ZYMORE{n:05d}", rng.choice(city["persons"]), rng.choice(institutions), random_day(rng, 2025))
        for n in range(300)
    ])
    rebuild_year(2025)
    with CaptureQueriesContext(connection) as large:
        assert client.get("/admin/alliances/dashboard/?year=2025").status_code == 200
    assert len(large) == len(small)
    # No query of the page reads the claims or cases table beyond the latest-year probes (index ends).
    reading_claims = [q["sql"] for q in large.captured_queries
                      if re.search(r'settlement_(outpatientclaim|inpatientcase)\b', q["sql"]) and "MAX(" not in q["sql"]]
    assert reading_claims == [], reading_claims


@pytest.mark.parametrize("role, scope, sees", [
    ("city", None, {"A1", "A2", "B", "吴兴区", "南浔区"}),
    ("county", "330503", {"B", "南浔区"}),
    ("hospital", "H33050200001", {"A1", "吴兴区"}),
    ("auditor", None, {"A1", "A2", "B", "吴兴区", "南浔区"}),
])
def test_dashboard_scope_for_every_role(city, client, make_user, role, scope, sees):
    for year in YEARS:
        rebuild_year(year)
    names = dict(zip(("A1", "A2", "B"), (a.name for a in city["alliances"])))
    client.force_login(make_user(role, scope))
    body = client.get("/admin/alliances/dashboard/?year=2025").content.decode()
    shown = {label for label, name in names.items() if re.search(re.escape(name) + r"(?!\d)", body)}
    shown |= {county for county in ("吴兴区", "南浔区") if county in body}
    assert shown == sees


def test_health_commission_has_no_dashboard(city, client, make_user):
    client.force_login(make_user("health", "330502"))
    assert client.get("/admin/alliances/dashboard/?year=2025").status_code == 403


def test_dashboard_warns_about_years_never_rebuilt(city, client, make_user):
    rebuild_year(2025)
    client.force_login(make_user("city"))
    body = client.get("/admin/alliances/dashboard/?year=2025").content.decode()
    assert "2024年的指标汇总尚未完整生成" in body and "2024、2025年" not in body
    rebuild_year(2024)
    assert "指标汇总尚未完整生成" not in client.get("/admin/alliances/dashboard/?year=2025").content.decode()


def test_deltas_leave_exactly_the_rows_a_rebuild_writes(city, tmp_path, client, make_user):
    """Imports and admin deletes change the month rows by their difference; afterwards the stored rows
    are, row for row, the ones a rebuild writes: no row left behind with nothing in it (a unit-month
    whose only claim moved away or went), no row missing."""
    for year in YEARS:
        rebuild_year(year)
    inst, person = city["q"], city["persons"][2]
    # q's only 2025-11 claim moves to December through a re-upload: its November rows must go.
    OutpatientClaim.objects.filter(institution=inst, visit_date__year=2025, visit_date__month=11).delete()
    rebuild_year(2025)
    lone = [["LONE1", person.id_number, inst.code, "2025-11-03", "普通门诊", "", "50.00", "30.00", "20.00", "否"]]
    write = lambda name, rows: write_csv(tmp_path / name, CLAIM_HEADERS, rows)  # noqa: E731
    assert import_file("outpatient_claims", write("lone.csv", lone)).created == 1
    assert KpiProviderMonth.objects.filter(year=2025, month=11, level="institution", unit_id=inst.pk).exists()
    moved = [["LONE1", person.id_number, inst.code, "2025-12-03", "普通门诊", "", "50.00", "30.00", "20.00", "否"]]
    assert import_file("outpatient_claims", write("moved.csv", moved)).updated == 1
    assert not KpiProviderMonth.objects.filter(year=2025, month=11, level="institution", unit_id=inst.pk).exists()
    client.force_login(make_user("city"))
    gone = OutpatientClaim.objects.filter(visit_date__year=2024).order_by("pk")[:4]
    page = client.post("/admin/settlement/outpatientclaim/", {
        "action": "delete_selected", "_selected_action": [c.pk for c in gone], "post": "yes",
    })
    assert page.status_code == 302
    after = {year: month_rows(year) for year in YEARS}
    for year in YEARS:
        rebuild_year(year)
        assert month_rows(year) == after[year]


def test_an_admin_change_moves_a_claim_between_months_units_and_persons(city, rf, make_user):
    """A claim changed through the admin's save: out of its old month, institution and person, into
    the new ones."""
    from django.contrib import admin as django_admin

    for year in YEARS:
        rebuild_year(year)
    claim = OutpatientClaim.objects.filter(visit_date__year=2025, visit_date__month__lte=6).order_by("pk").first()
    model_admin = django_admin.site._registry[OutpatientClaim]
    request = rf.post("/")
    request.user = make_user("city")
    claim.visit_date, claim.total_cost, claim.referral = d(2025, 12, 30), D("777.77"), not claim.referral
    claim.institution, claim.person = city["h"], city["persons"][7]
    model_admin.save_model(request, claim, form=None, change=True)
    assert_aggregates_equal_raw(2025)
    after = month_rows(2025)
    rebuild_year(2025)
    assert month_rows(2025) == after


def test_a_delta_over_many_persons_reads_the_whole_coverage_with_the_same_rows(city, tmp_path, monkeypatch):
    """Past COVERAGE_BY_PERSON_LIMIT persons the delta reads the city's coverage instead of theirs:
    the same rows either way."""
    from settlement.kpi_aggregates import services

    for year in YEARS:
        rebuild_year(year)
    monkeypatch.setattr(services, "COVERAGE_BY_PERSON_LIMIT", 0)
    rows = [[f"MANY{n}", p.id_number, "H33050200001", f"2025-0{1 + n % 9}-11", "普通门诊", "", "80.00", "60.00", "20.00",
             "否"] for n, p in enumerate(city["persons"])]
    assert import_file("outpatient_claims", write_csv(tmp_path / "many.csv", CLAIM_HEADERS, rows)).created == 40
    assert_aggregates_equal_raw(2025)
    after = month_rows(2025)
    rebuild_year(2025)
    assert month_rows(2025) == after


def test_a_large_import_rewrites_its_months_with_the_same_rows(city, tmp_path, monkeypatch):
    """Past DELTA_ROW_LIMIT landed rows the months an import touches (those its rows leave as well)
    are rewritten whole instead of changed by the difference: the same rows either way."""
    from settlement.kpi_aggregates import services

    for year in YEARS:
        rebuild_year(year)
    monkeypatch.setattr(services, "DELTA_ROW_LIMIT", 1)
    moved = OutpatientClaim.objects.filter(institution=city["h"], visit_date__year=2025, visit_date__month=2).first()
    assert moved is not None
    rows = [[moved.serial, moved.person.id_number, "H33050200001", "2025-10-01", "普通门诊", "", "55.00", "44.00", "11.00",
             "否"],
            ["BIG2", city["persons"][3].id_number, "H33050200001", "2025-04-01", "普通门诊", "", "80.00", "60.00", "20.00",
             "否"]]
    result = import_file("outpatient_claims", write_csv(tmp_path / "big.csv", CLAIM_HEADERS, rows))
    assert (result.created, result.updated) == (1, 1)
    assert_aggregates_equal_raw(2025)
    after = month_rows(2025)
    rebuild_year(2025)
    assert month_rows(2025) == after
