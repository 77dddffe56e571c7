"""seed_demo --size small: one seed per module (rolled back afterwards), checked by SQL invariants."""
import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.test import override_settings

from alliances.models import Alliance, Institution, Membership, UserScope
from contracts.models import Contract, DiseaseRegistration, InsuredPerson
from contracts.validators import age_on, parse_resident_id
from settlement.demo import DEMO_LOGINS, seed_demo
from settlement.models import (
    Assessment, Budget, CapitationStandard, FamilyDoctorService, InpatientCase, OutpatientClaim, SpecialDesignation,
    VisitType,
)

YEAR = 2025
FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"
JAN1 = datetime.date(YEAR, 1, 1)


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    # A fast hasher for the five demo logins: hashing is not what this module tests.
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=[FAST_HASHER]):
        with transaction.atomic():
            result = seed_demo("small", year=YEAR, log=lambda message: None)
            yield result
            transaction.set_rollback(True)


def scalar(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_every_person_id_is_valid_and_matches_the_derived_columns(seeded, db):
    persons = list(InsuredPerson.objects.values_list("id_number", "birth_date", "sex", "county__code"))
    assert len(persons) == 2_500
    for number, birth, sex, county in persons:
        parsed = parse_resident_id(number)
        assert (parsed.birth_date, parsed.sex) == (birth, sex)
        assert number[:6] == county


def test_population_covers_the_age_edges_and_both_insurance_types_in_every_county(seeded, db):
    by_county = {}
    for birth, county, insurance in InsuredPerson.objects.values_list("birth_date", "county__code", "insurance_type"):
        entry = by_county.setdefault(county, {"ages": set(), "types": set()})
        entry["ages"].add(age_on(birth, JAN1))
        entry["types"].add(insurance)
    assert set(by_county) == {"330502", "330503", "330521", "330522", "330523"}
    for entry in by_county.values():
        assert {60, 61, 65}.issubset(entry["ages"])
        assert max(entry["ages"]) >= 80 and min(entry["ages"]) == 0
        assert entry["types"] == {"职工", "居民"}
    # Born on 2 January, 61 years before: still 60 on 1 January of the demo year.
    still_60 = InsuredPerson.objects.filter(birth_date=datetime.date(YEAR - 61, 1, 2))
    assert still_60.values("county").distinct().count() == 5


def test_no_person_holds_two_contracts_in_force_on_the_same_day(seeded, db):
    table = Contract._meta.db_table
    overlapping = scalar(f"""
        SELECT count(*) FROM {table} a JOIN {table} b ON a.person_id = b.person_id AND a.id < b.id
        WHERE a.start <= COALESCE(b."end", DATE '9999-12-31') AND b.start <= COALESCE(a."end", DATE '9999-12-31')
    """)
    assert overlapping == 0
    # The data does exercise the rule: people who moved to another institution the next day.
    moved = scalar(f"""
        SELECT count(*) FROM {table} a JOIN {table} b ON a.person_id = b.person_id
        WHERE b.start = a."end" + 1 AND a.institution_id <> b.institution_id AND a."end" >= DATE '{YEAR}-01-01'
    """)
    assert moved > 0
    assert Contract.objects.filter(verified_on__isnull=True).exists()
    assert Contract.objects.filter(start__year=YEAR).exists()
    assert Contract.objects.filter(package__isnull=False, package__is_default=False).exists()
    assert not Contract.objects.filter(verified_on__lt=F("start")).exists()


def test_no_institution_belongs_to_two_alliances_on_the_same_day(seeded, db):
    table = Membership._meta.db_table
    overlapping = scalar(f"""
        SELECT count(*) FROM {table} a JOIN {table} b ON a.institution_id = b.institution_id AND a.id < b.id
        WHERE a.joined_on <= COALESCE(b.left_on, DATE '9999-12-31')
          AND b.joined_on <= COALESCE(a.left_on, DATE '9999-12-31')
    """)
    assert overlapping == 0
    transfers = (
        Membership.objects.values("institution").annotate(n=Count("alliance", distinct=True)).filter(n__gt=1)
    )
    assert transfers.count() >= 1
    left = Membership.objects.get(institution_id=transfers[0]["institution"], left_on__isnull=False)
    assert left.left_on == datetime.date(YEAR, 6, 30)


def test_every_lead_hospital_is_a_member_of_its_alliance_all_year(seeded, db):
    alliances = list(Alliance.objects.select_related("lead_hospital"))
    assert 5 <= len(alliances) <= 10
    for alliance in alliances:
        assert alliance.lead_hospital.level in ("二级", "三级")
        assert Membership.objects.filter(
            Q(left_on__isnull=True) | Q(left_on__gte=datetime.date(YEAR, 12, 31)),
            alliance=alliance, institution=alliance.lead_hospital, joined_on__lte=JAN1,
        ).exists()
    # In the city (330500) every code is H33…; the benefit and audit demos add three outside it (海口).
    codes = Institution.objects.values_list("code", flat=True)
    assert all(code.startswith("H33") and len(code) == 12 for code in codes if not code.startswith("H460105"))
    assert set(Institution.objects.values_list("level", flat=True)) == {"三级", "二级", "一级", "基层"}
    assert set(Institution.objects.exclude(grassroots_kind="").values_list("grassroots_kind", flat=True)) == {
        "乡镇卫生院", "社区卫生服务中心", "村卫生室", "社区卫生服务站",
    }


def test_claims_and_cases_split_cost_exactly(seeded, db):
    assert not OutpatientClaim.objects.exclude(total_cost=F("fund_paid") + F("personal_paid")).exists()
    assert not InpatientCase.objects.exclude(total_cost=F("fund_paid") + F("personal_paid")).exists()
    assert not InpatientCase.objects.filter(discharge_date__lt=F("admission_date")).exists()
    # The demo year and, as the bureau's history, the year before it (settlement/demo/population.py).
    assert set(InpatientCase.objects.dates("discharge_date", "year").values_list("discharge_date__year", flat=True)) \
        == {YEAR - 1, YEAR}
    assert not OutpatientClaim.objects.exclude(visit_date__year__in=(YEAR - 1, YEAR)).exists()
    for year in (YEAR - 1, YEAR):
        assert not OutpatientClaim.objects.filter(visit_date__year=year).exclude(serial__regex=rf"^(MZ|SW|JC..){year}").exists()
    assert set(OutpatientClaim.objects.values_list("visit_type", flat=True)) == set(VisitType.values)
    assert OutpatientClaim.objects.filter(referral=True).exists()
    assert OutpatientClaim.objects.exclude(institution__county=F("person__county")).exists()
    assert OutpatientClaim.objects.filter(fund_paid__gt=Decimal("0")).count() > 10_000
    assert InpatientCase.objects.exclude(bed_day_category="").exists()
    assert InpatientCase.objects.filter(incomplete_stay=True).exists()
    # Readmissions to the same DRG group within 10 days.
    table = InpatientCase._meta.db_table
    assert scalar(f"""
        SELECT count(*) FROM {table} a JOIN {table} b ON a.person_id = b.person_id AND a.id <> b.id
        WHERE a.drg_code <> '' AND a.drg_code = b.drg_code
          AND b.admission_date BETWEEN a.discharge_date AND a.discharge_date + 10
    """) > 0


def test_parameters_let_every_scheme_run(seeded, db):
    general = CapitationStandard.objects.filter(year=YEAR, disease__isnull=True, status="已审批")
    assert {(s.insurance_type, s.age_band) for s in general} == {
        ("职工", "60周岁及以下"), ("职工", "60周岁以上"), ("居民", "60周岁及以下"), ("居民", "60周岁以上"),
    }
    for alliance in Alliance.objects.all():
        assert set(Budget.objects.filter(year=YEAR, scheme="alliance_budget", unit_code=alliance.code)
                   .values_list("insurance_type", flat=True)) == {"职工", "居民"}
        assert Assessment.objects.filter(year=YEAR, unit_code=alliance.code).exists()
    pools = set(Budget.objects.filter(year=YEAR, scheme="drg").values_list("unit_code", flat=True))
    for county, level in InpatientCase.objects.filter(drg_code__gt="", bed_day_category="").values_list(
        "institution__county__code", "institution__level"
    ).distinct():
        band = "二级及以上" if level in ("二级", "三级") else "一级及基层"
        assert f"{county}-{band}" in pools
    assert DiseaseRegistration.objects.filter(filed_on__year=YEAR, disease__category="慢性病").exists()
    assert FamilyDoctorService.objects.filter(service_date__year=YEAR).exists()
    assert SpecialDesignation.objects.filter(year=YEAR, signing_institution__isnull=False).exists()
    # Every 二类门特 designation rests on a registration of that disease.
    for person_id, disease_id in SpecialDesignation.objects.values_list("person_id", "disease_id"):
        assert DiseaseRegistration.objects.filter(person_id=person_id, disease_id=disease_id).exists()


def test_second_run_changes_nothing_and_prints_the_logins(seeded, db, capsys):
    models = (InsuredPerson, Contract, OutpatientClaim, InpatientCase, Membership, Budget, get_user_model())
    before = {model: model.objects.count() for model in models}
    call_command("seed_demo", "--size", "small", "--year", str(YEAR))
    out = capsys.readouterr().out
    assert "演示数据已存在" in out
    for username, _role, _scope, password in DEMO_LOGINS:
        assert f"{username}" in out and password in out
    assert {model: model.objects.count() for model in models} == before


def test_demo_logins_have_their_roles_and_passwords(seeded, db):
    lead = Alliance.objects.order_by("code").first().lead_hospital
    expected = {
        "demo": ("city", None, None), "demo_county": ("county", "330502", None),
        "demo_health": ("health", "330502", None), "demo_hospital": ("hospital", None, lead.code),
        "demo_audit": ("auditor", None, None),
    }
    passwords = {username: password for username, _role, _scope, password in DEMO_LOGINS}
    for username, (role, region, institution) in expected.items():
        scope = UserScope.objects.select_related("user", "region", "institution").get(user__username=username)
        assert scope.role == role
        assert (scope.region.code if scope.region else None) == region
        assert (scope.institution.code if scope.institution else None) == institution
        assert scope.user.is_staff and not scope.user.is_superuser
        assert scope.user.check_password(passwords[username])


def test_cases_carry_a_discharge_mode_with_deaths_concentrated_in_severe_groups(seeded, db):
    assert not InpatientCase.objects.filter(discharge_mode__isnull=True).exists()
    deaths = InpatientCase.objects.filter(discharge_mode="5")
    share = deaths.count() / InpatientCase.objects.count()
    assert 0.002 < share < 0.03  # a plausible in-hospital mortality overall (cities report well under 1%)
    severe = InpatientCase.objects.filter(drg_code__regex=r"1$", bed_day_category="")
    mild = InpatientCase.objects.filter(drg_code__regex=r"5$", bed_day_category="")
    # every transferred case is 医嘱转院 (2), and 伴严重并发症 groups die far more often than 不伴 groups
    assert not InpatientCase.objects.filter(transferred=True).exclude(discharge_mode="2").exists()
    assert severe.filter(discharge_mode="5").count() / severe.count() > 5 * (
        mild.filter(discharge_mode="5").count() / mild.count())


def test_drg_analysis_of_the_demo_shows_a_spread_of_institutions(seeded, db):
    from settlement.analysis import drg as analysis

    rows = [r for r in analysis.indices(YEAR, ("institution",)) if r.grouped_cases >= 20]
    cmis = [r.cmi for r in rows]
    costs = [r.cost_index for r in rows]
    assert len(rows) >= 5
    assert max(cmis) - min(cmis) > Decimal("0.3") and max(costs) - min(costs) > Decimal("0.2")


def test_drg_analysis_page_reads_pre_aggregates_equal_to_the_live_figures(seeded, db):
    from settlement.analysis import aggregates, drg as analysis

    for year in (YEAR - 1, YEAR):
        stored, fresh = aggregates.read_indices(year, ("institution", "pool"))
        assert fresh, year
        live = analysis.indices(year, ("institution", "pool"))
        assert stored and sorted(map(repr, stored)) == sorted(map(repr, live)), year


def whole(value):
    return Decimal(value).quantize(Decimal("1"), rounding="ROUND_HALF_UP")


def test_demo_year_standards_are_the_cesuan_of_the_previous_year_not_of_its_own(seeded, db):
    """Issue 12: the demo year's standards come from the 测算 of its history year, as a bureau's would."""
    from django.db.models import Sum

    from settlement.engine.drg_calibration import CHANGE_REASON, preview
    from settlement.engine.schemes.alliance_budget import actual_by_alliance
    from settlement.engine.schemes.capitation import history_per_class
    from settlement.models import BedDayQuota, DiseaseStandard, DrgGroup, SpecialStandard

    # Capitation: every 普通门诊 standard is last year's Σ 统筹支付 × 12 ÷ person-months, to whole 元 …
    standards = {(s.insurance_type, s.age_band): s.amount
                 for s in CapitationStandard.objects.filter(year=YEAR, disease__isnull=True)}
    last_year, _ = history_per_class(YEAR - 1, disease_visit_types=(VisitType.CHRONIC.value,))
    this_year, _ = history_per_class(YEAR, disease_visit_types=(VisitType.CHRONIC.value,))
    assert standards == {k: whole(fund * 12 / pm) for k, (pm, fund) in last_year.items()}
    # … which is not what the demo year's own spending would give (the old shortcut).
    assert standards != {k: whole(fund * 12 / pm) for k, (pm, fund) in this_year.items()}

    # DRG: the year's catalogue is the adopted 测算 of the cases before it, recorded as such by the city user.
    proposals = {row.code: row.proposal for row in preview(YEAR)}
    groups = {g.code: g for g in DrgGroup.objects.filter(year=YEAR)}
    assert proposals and set(proposals) <= set(groups)
    for code, proposal in proposals.items():
        assert (groups[code].base_points, groups[code].average_cost) == (proposal.base_points, proposal.average_cost)
    record = DrgGroup.history.filter(year=YEAR).first()
    assert record.history_change_reason == CHANGE_REASON and record.history_user.username == "demo"
    # … and last year's was the published catalogue the history was settled under.
    assert DrgGroup.objects.get(year=YEAR - 1, code="GD19").average_cost == Decimal("11000.00")

    # Bed-day quota: last year's 统筹支付 per bed day (a same-day stay counts one), per level and category.
    for quota in BedDayQuota.objects.filter(year=YEAR):
        cases = InpatientCase.objects.filter(discharge_date__year=YEAR - 1, bed_day_category=quota.category,
                                             institution__level=quota.level)
        if not cases.exists():
            continue
        days = sum(max(1, (c.discharge_date - c.admission_date).days) for c in cases)
        assert quota.amount == whole(cases.aggregate(s=Sum("fund_paid"))["s"] / days), quota
    # Per-disease standard: last year's average cost of a stay of the disease (with its operation) at the level.
    checked = 0
    for standard in DiseaseStandard.objects.filter(year=YEAR).select_related("disease"):
        cases = InpatientCase.objects.filter(
            discharge_date__year=YEAR - 1, bed_day_category="", principal_diagnosis=standard.disease.code,
            main_operation=standard.main_operation, institution__level=standard.level)
        if cases.exists():
            total = cases.aggregate(s=Sum("total_cost"))["s"]
            assert standard.amount == whole(total / cases.count()), standard
            checked += 1
    assert checked

    # 二类门特: S_d = h_d × B / Σ h_d·N_d, so Σ S_d × N_d over the year's designations is B, up to ½ 分 per head.
    budget = Budget.objects.get(year=YEAR, scheme="special_outpatient").amount
    planned = dict(SpecialDesignation.objects.filter(year=YEAR).values_list("disease__code")
                   .annotate(n=Count("id")).values_list("disease__code", "n"))
    amounts = dict(SpecialStandard.objects.filter(year=YEAR).values_list("disease__code", "amount"))
    assert set(SpecialStandard.objects.filter(year=YEAR).values_list("status", flat=True)) == {"已审批"}
    assert abs(sum(amounts[code] * n for code, n in planned.items()) - budget) <= Decimal("0.005") * sum(planned.values())

    # Alliance budget: the residents' row is last year's A moved by at most 6%, to 100 元; employees' is 0.
    spent = actual_by_alliance(YEAR - 1, list(Alliance.objects.values_list("pk", flat=True)))
    for alliance in Alliance.objects.all():
        rows = dict(Budget.objects.filter(year=YEAR, scheme="alliance_budget", unit_code=alliance.code)
                    .values_list("insurance_type", "amount"))
        assert rows["职工"] == 0
        assert spent[alliance.pk] * Decimal("0.96") - 50 <= rows["居民"] <= spent[alliance.pk] * Decimal("1.06") + 50
