"""退出按病种付费 (SPEC §6.7): roles, the 15% exit-rate cap at its boundary, exits paid by item, the KPI."""
import pytest

from settlement.analysis.kpis import alliance_kpis, institution_kpis
from alliances.models import Alliance, Institution, InstitutionLevel
from settlement.engine import services
from settlement.engine.case_requests import DiseaseExitRequest, RequestStatus
from settlement.engine.case_review_services import (
    CaseRequestError,
    decide_exit_request,
    file_exit_request,
)
from settlement.engine.models import UnitResult
from tests import factories
from tests.settlement.engine_data import policy
from tests.settlement.inpatient_builders import D, case, disease_standard


@pytest.fixture
def world(county, other_county, make_user):
    hospital = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    other = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    disease_standard("K35.8", InstitutionLevel.SECONDARY, "5000.00")
    person = factories.person()
    # 20 per-disease cases: the first three are long, costly stays (统筹支付 25,000), the rest cost
    # 6,000 with 1,000 borne by the patient (standard − 个人负担 = 4,000; 统筹支付 5,000).
    cases = [
        case(hospital, person, f"2025-{m:02d}-01", f"2025-{m:02d}-05", diagnosis="K35.8",
             total="30000.00" if i < 3 else "6000.00", personal="5000.00" if i < 3 else "1000.00")
        for i, m in enumerate([1, 2, 3] + [4] * 17)
    ]
    return {
        "hospital": hospital, "other": other, "cases": cases,
        "hospital_user": make_user("hospital", hospital.code), "other_user": make_user("hospital", other.code),
        "county": make_user("county", county.code), "other_county": make_user("county", other_county.code),
        "city": make_user("city"),
    }


def file(world, index, user_key="hospital_user"):
    return file_exit_request(world["cases"][index], reason="并发症转科", user=world[user_key])


def approve(world, index, **kwargs):
    return decide_exit_request(file(world, index), approve=True, user=world["city"], **kwargs)


# --- roles and bad input --------------------------------------------------------------------


def test_roles(world):
    with pytest.raises(CaseRequestError, match="不属于本机构或本医共体"):
        file(world, 0, "other_user")
    with pytest.raises(CaseRequestError, match="只有医疗机构财务人员"):
        file(world, 0, "county")
    request = file(world, 0)
    with pytest.raises(CaseRequestError, match="只有市、县区医保局"):
        decide_exit_request(request, approve=True, user=world["hospital_user"])
    with pytest.raises(CaseRequestError, match="不属于本县区"):
        decide_exit_request(request, approve=True, user=world["other_county"])
    decide_exit_request(request, approve=True, user=world["county"])
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.override) == (RequestStatus.APPROVED, world["county"], False)


def test_only_per_disease_cases_may_exit(world):
    drg_case = case(world["hospital"], factories.person(), "2025-05-01", "2025-05-05", diagnosis="J18.0", drg="G01")
    with pytest.raises(CaseRequestError, match="不属于按病种付费病例"):
        file_exit_request(drg_case, reason="x", user=world["hospital_user"])
    with pytest.raises(CaseRequestError, match="请填写申请理由"):
        file_exit_request(world["cases"][0], reason="", user=world["hospital_user"])
    file(world, 0)
    with pytest.raises(CaseRequestError, match="不能重复提交"):
        file(world, 0)


def test_reject_needs_a_comment(world):
    request = file(world, 0)
    with pytest.raises(CaseRequestError, match="须填写审核意见"):
        decide_exit_request(request, approve=False, user=world["city"])
    decide_exit_request(request, approve=False, comment="理由不足", user=world["city"])
    request.refresh_from_db()
    assert (request.status, request.decision_comment) == (RequestStatus.REJECTED, "理由不足")


# --- the cap at its boundary ------------------------------------------------------------------


def test_exit_cap_at_the_boundary(world):
    for index in range(3):
        approve(world, index)  # the 3rd makes 3 / 20 = 15%: exactly at the cap is allowed
    fourth = file(world, 3)
    with pytest.raises(CaseRequestError, match=r"当前退出率为15\.00%（3/20）.*批准后为20\.00%（4/20）.*超过15\.00%上限"):
        decide_exit_request(fourth, approve=True, user=world["city"])
    with pytest.raises(CaseRequestError, match="超过15.00%上限"):  # override without a reason
        decide_exit_request(fourth, approve=True, override=True, override_reason="  ", user=world["city"])
    fourth.refresh_from_db()
    assert fourth.status == RequestStatus.PENDING
    decide_exit_request(fourth, approve=True, override=True, override_reason="重大公共卫生事件", user=world["city"])
    fourth.refresh_from_db()
    assert (fourth.status, fourth.override, fourth.override_reason) == (
        RequestStatus.APPROVED, True, "重大公共卫生事件",
    )
    assert DiseaseExitRequest.objects.filter(status=RequestStatus.APPROVED, override=False).count() == 3


def test_the_cap_comes_from_the_policy(world):
    policy("disease", exit_rate_cap="0.10")
    approve(world, 0)
    approve(world, 1)  # 2 / 20 = 10%
    with pytest.raises(CaseRequestError, match=r"超过10\.00%上限"):
        approve(world, 2)


# --- exits in the run ---------------------------------------------------------------------------


def test_exited_cases_are_paid_by_item(world):
    policy("disease")
    for index in range(3):
        approve(world, index)
    file(world, 3)  # pending: still paid by the standard
    decide_exit_request(file(world, 4), approve=False, comment="不同意", user=world["city"])  # rejected: ditto
    run = services.start_run("disease", 2025, sync=True)
    result = UnitResult.objects.get(run=run, unit_code=world["hospital"].code)
    # E = 17 × (5,000 − 1,000) + 3 × 25,000 (统筹支付, by item) = 68,000 + 75,000 = 143,000
    # A = 17 × 5,000 + 3 × 25,000 = 160,000
    assert (result.entitled, result.actual) == (D("143000.00"), D("160000.00"))
    assert result.details["exited_cases"] == 3
    with pytest.raises(services.SettlementError, match="还有1件退出按病种付费申请待审核"):
        services.approve_run(run, user=world["city"])


# --- the KPI ------------------------------------------------------------------------------------


def test_exit_rate_kpi(world):
    for index in range(3):
        approve(world, index)
    file(world, 3)  # pending exits don't count
    factories.alliance(lead=world["other"], members=(world["hospital"],))
    rates = institution_kpis(2025, Institution.objects.filter(pk__in=[world["hospital"].pk, world["other"].pk]))
    assert rates[world["hospital"].pk].values["disease_exit_rate"] == D("15.00")  # 3 / 20
    assert rates[world["other"].pk].values["disease_exit_rate"] is None  # no per-disease case
    (alliance_rates,) = alliance_kpis(2025, Alliance.objects.all()).values()
    assert alliance_rates.values["disease_exit_rate"] == D("15.00")


def test_exit_rate_kpi_from_the_aggregates_follows_each_approval(world):
    from settlement.analysis import kpis
    from alliances.models import Region
    from settlement.kpi_aggregates import selectors
    from settlement.kpi_aggregates.services import rebuild_year

    factories.alliance(lead=world["other"], members=(world["hospital"],))
    rebuild_year(2025)
    hospital = Institution.objects.filter(pk=world["hospital"].pk)
    assert institution_kpis(2025, hospital, selectors)[world["hospital"].pk].values["disease_exit_rate"] == D("0.00")
    for index in range(3):
        approve(world, index)  # each approval refreshes its case's month; no rebuild
    file(world, 3)  # pending exits don't count
    assert institution_kpis(2025, hospital, selectors)[world["hospital"].pk].values["disease_exit_rate"] == D("15.00")  # 3 / 20
    (alliance_rates,) = alliance_kpis(2025, Alliance.objects.all(), selectors).values()
    assert alliance_rates.values["disease_exit_rate"] == D("15.00")
    counties = Region.objects.filter(parent__isnull=False)
    assert ({pk: u.values for pk, u in kpis.county_kpis(2025, counties, selectors).items()}
            == {pk: u.values for pk, u in kpis.county_kpis(2025, counties).items()})
