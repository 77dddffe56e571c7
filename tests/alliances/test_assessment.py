"""Assessment: weights summing to 100, attainment per KPI against its target, scores by hand."""
import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from alliances import services_budget as svc
from alliances.models import AssessmentScheme, AssessmentWeight, InstitutionLevel, Kpi, KpiTarget
from settlement.models import Assessment, OutpatientClaim, VisitType
from tests import factories

D = Decimal


def target(comparison, value, tolerance="0"):
    return KpiTarget(kpi=Kpi.COUNTY_VISIT_RATE, comparison=comparison, target=D(value), tolerance=D(tolerance))


@pytest.mark.parametrize("value, expected", [
    ("90", "1"), ("95", "1"), ("45", "0.5"), ("0", "0"),  # ≥ 90: value / 90, capped at 1
])
def test_attainment_at_least(value, expected):
    assert svc.attainment(D(value), target("gte", "90")) == D(expected)


@pytest.mark.parametrize("value, expected", [
    ("8", "1"), ("-3", "1"), ("12", "0.5"), ("16", "0"), ("30", "0"),  # ≤ 8: 1 − (v − 8) / 8, floored at 0
])
def test_attainment_at_most(value, expected):
    assert svc.attainment(D(value), target("lte", "8")) == D(expected)


@pytest.mark.parametrize("value, expected", [
    ("65", "1"), ("70", "1"), ("60", "1"),  # inside 65 ± 5
    ("73", "0.95384615384615384615384615385"),  # 1 − (8 − 5) / 65 = 62/65
    ("52", "0.87692307692307692307692307692"),  # 1 − (13 − 5) / 65 = 57/65
])
def test_attainment_about(value, expected):
    reached = svc.attainment(D(value), target("approx", "65", "5"))
    assert abs(reached - D(expected)) < D("1e-20")


def test_weights_must_sum_to_100(db):
    scheme = AssessmentScheme.objects.create(year=2025)
    AssessmentWeight.objects.create(scheme=scheme, kpi=Kpi.COUNTY_VISIT_RATE, weight=D("40"))
    AssessmentWeight.objects.create(scheme=scheme, kpi=Kpi.PERSONAL_BURDEN, weight=D("50"))
    with pytest.raises(ValidationError, match="合计应为100分，当前为90分"):
        svc.validate_weights(scheme)
    AssessmentWeight.objects.create(scheme=scheme, kpi=Kpi.GRASSROOTS_VISIT_RATE, weight=D("10"))
    assert svc.validate_weights(scheme) == D("100")


def test_score_from_kpis_by_hand(db):
    targets = KpiTarget.for_year(2025)  # seeded: ≥ 90, 65 ± 5, ≤ 8, ≤ 30
    weights = {"county_visit_rate": D("40"), "grassroots_visit_rate": D("20"),
               "total_cost_growth": D("20"), "personal_burden": D("20")}
    values = {"county_visit_rate": D("72.00"), "grassroots_visit_rate": D("66.00"),
              "total_cost_growth": D("10.00"), "personal_burden": D("27.50")}
    score, lines = svc.score_from_kpis(weights, values, targets)
    # 40 × 72/90 = 32; 20 × 1 = 20; 20 × (1 − 2/8) = 15; 20 × 1 = 20 → 87.00
    assert score == D("87.00")
    assert [line.points for line in lines] == [D("32.00"), D("20.00"), D("15.00"), D("20.00")]


def test_score_refuses_kpi_without_target_or_data(db):
    targets = KpiTarget.for_year(2025)
    with pytest.raises(ValidationError, match="家庭医生签约率.*没有设定目标值"):
        svc.score_from_kpis({"signing_rate": D("100")}, {"signing_rate": D("50")}, targets)
    KpiTarget.objects.create(kpi=Kpi.DISEASE_EXIT_RATE, comparison="lte", target=D("5"))
    with pytest.raises(ValidationError, match="病种退出率.*暂无数据"):
        svc.score_from_kpis({"disease_exit_rate": D("100")}, {"disease_exit_rate": None}, KpiTarget.for_year(2025))


@pytest.fixture
def assessed_world(county, other_county):
    g1 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    t3 = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY)
    alliance = factories.alliance(members=[g1], county=county)
    other = factories.alliance(county=other_county)
    p = factories.person(county=county)
    for serial, inst, day in (("a", g1, 5), ("b", g1, 6), ("c", t3, 7)):
        OutpatientClaim.objects.create(
            institution=inst, serial=serial, person=p, visit_date=datetime.date(2025, 3, day), insurance_type="居民",
            visit_type=VisitType.GENERAL, total_cost=D("100"), fund_paid=D("60"), personal_paid=D("40"),
        )
    scheme = AssessmentScheme.objects.create(year=2025)
    for kpi, weight in (("county_visit_rate", "40"), ("grassroots_visit_rate", "30"), ("personal_burden", "30")):
        AssessmentWeight.objects.create(scheme=scheme, kpi=kpi, weight=D(weight))
    return {"alliance": alliance, "other": other, "scheme": scheme}


def test_compute_assessments_writes_scores(assessed_world, make_user):
    alliance = assessed_world["alliance"]
    Assessment.objects.create(year=2025, unit_code=alliance.code, score=D("50"), retention_bonus=D("3"))
    outcome = svc.compute_assessments(make_user("city"), 2025)
    # County residents: 3 visits, 2 in county, 2 at 基层 → 66.67% both.
    # 县域内就诊率 40 × 66.67/90 = 29.6311…; 基层就诊率 66.67 within 65 ± 5 → 30;
    # personal burden at A's members (G1): 80 / 200 = 40% vs ≤ 30 → 1 − 10/30 = 2/3 → 20.
    # Σ = 79.6311… → 79.63
    assert outcome.scores[alliance.code][0] == D("79.63")
    row = Assessment.objects.get(year=2025, unit_code=alliance.code)
    assert row.score == D("79.63")
    assert row.retention_bonus == D("3.00")  # a hand-entered bonus survives the recomputation
    assert Assessment.objects.filter(year=2025).count() == 1  # updated, not duplicated
    # The other county has no visits at all: skipped with the reason, no invented score.
    other = assessed_world["other"].code
    assert "县域内就诊率" in outcome.skipped[other] and "暂无数据" in outcome.skipped[other]
    assert not Assessment.objects.filter(unit_code=other).exists()


def test_compute_assessments_respects_role_and_scope(assessed_world, make_user, county):
    with pytest.raises(PermissionDenied, match="市医保局或县区医保局"):
        svc.compute_assessments(make_user("health", county.code), 2025)
    with pytest.raises(PermissionDenied):
        svc.compute_assessments(make_user("hospital", assessed_world["alliance"].lead_hospital.code), 2025)
    outcome = svc.compute_assessments(make_user("county", county.code), 2025)
    assert list(outcome.scores) == [assessed_world["alliance"].code]  # not the other county's alliance
    assert outcome.skipped == {}
    assert not Assessment.objects.filter(unit_code=assessed_world["other"].code).exists()


def test_compute_refuses_bad_weights_and_writes_nothing(assessed_world, make_user):
    AssessmentWeight.objects.filter(kpi="personal_burden").update(weight=D("20"))
    with pytest.raises(ValidationError, match="当前为90分"):
        svc.compute_assessments(make_user("city"), 2025)
    with pytest.raises(ValidationError, match="2026年尚未设定考核方案"):
        svc.compute_assessments(make_user("city"), 2026)
    assert not Assessment.objects.exists()


def test_admin_weight_formset_requires_100(assessed_world, client, make_user):
    client.force_login(make_user("city"))
    scheme = assessed_world["scheme"]
    weights = list(scheme.weights.order_by("pk"))
    data = {
        "year": "2025", "name": scheme.name, "note": "",
        "weights-TOTAL_FORMS": "3", "weights-INITIAL_FORMS": "3", "weights-MIN_NUM_FORMS": "0",
        "weights-MAX_NUM_FORMS": "1000",
    }
    for i, w in enumerate(weights):
        data.update({f"weights-{i}-id": str(w.pk), f"weights-{i}-scheme": str(scheme.pk),
                     f"weights-{i}-kpi": w.kpi, f"weights-{i}-weight": "30"})
    response = client.post(f"/admin/alliances/assessmentscheme/{scheme.pk}/change/", data)
    assert response.status_code == 200
    assert "各指标权重合计应为100分，当前为90分" in response.content.decode()
    assert sorted(scheme.weights.values_list("weight", flat=True)) == [D("30"), D("30"), D("40")]


def test_institution_level_scores(assessed_world, make_user, county):
    # Only personal burden weighted this time: 100 × attainment.
    scheme = assessed_world["scheme"]
    scheme.weights.all().delete()
    AssessmentWeight.objects.create(scheme=scheme, kpi="personal_burden", weight=D("100"))
    outcome = svc.compute_assessments(make_user("county", county.code), 2025, level="institution")
    g1 = assessed_world["alliance"].memberships.exclude(institution=assessed_world["alliance"].lead_hospital).get()
    # G1's claims: personal 80 / total 200 = 40% against ≤ 30 → 1 − 10/30 → 66.666… → 66.67
    assert outcome.scores[g1.institution.code][0] == D("66.67")
    assert Assessment.objects.get(unit_code=g1.institution.code).score == D("66.67")
    # The lead hospital gave no care: no burden figure, skipped rather than scored.
    assert assessed_world["alliance"].lead_hospital.code in outcome.skipped
    with pytest.raises(ValidationError, match="考核对象"):
        svc.compute_assessments(make_user("city"), 2025, level="county")
