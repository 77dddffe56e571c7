"""特病单议 / 新技术 requests (SPEC §6.5): who may file and decide, and only approved points enter a run."""
import pytest

from alliances.models import InstitutionLevel
from settlement.engine import services
from settlement.engine.case_requests import CaseReview, RequestStatus, ReviewKind
from settlement.engine.case_review_services import (
    CaseRequestError,
    decide_case_review,
    file_case_review,
)
from settlement.engine.models import UnitResult
from tests import factories
from tests.settlement.engine_data import policy
from tests.settlement.inpatient_builders import D, budget, case, group

POOL = "330502-二级及以上"


@pytest.fixture
def world(county, other_county, make_user):
    a = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    b = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    far = factories.institution(county=other_county, level=InstitutionLevel.SECONDARY)
    group("G01", "100.0000")
    case_a = case(a, factories.person(), "2025-03-01", "2025-03-08", drg="G01", total="1000.00", personal="200.00")
    case_b = case(b, factories.person(), "2025-04-01", "2025-04-08", drg="G01", total="1000.00", personal="200.00")
    budget(POOL, "10000.00")
    policy("drg")
    return {
        "a": a, "b": b, "far": far, "case_a": case_a, "case_b": case_b,
        "hospital_a": make_user("hospital", a.code), "hospital_b": make_user("hospital", b.code),
        "county": make_user("county", county.code), "other_county": make_user("county", other_county.code),
        "city": make_user("city"),
    }


def file(world, user_key="hospital_a", points="300"):
    return file_case_review(world["case_a"], kind=ReviewKind.SPECIAL_CASE, reason="罕见并发症",
                            proposed_points=points, user=world[user_key])


def entitled(run):
    return dict(UnitResult.objects.filter(run=run).values_list("unit_code", "entitled"))


# --- who may file and decide -----------------------------------------------------------------


def test_hospital_of_another_institution_cannot_file(world):
    with pytest.raises(CaseRequestError, match="不属于本机构或本医共体"):
        file(world, "hospital_b")
    assert not CaseReview.objects.exists()


def test_bureau_staff_cannot_file(world):
    with pytest.raises(CaseRequestError, match="只有医疗机构财务人员"):
        file(world, "county")


def test_lead_hospital_files_for_a_member(world, make_user):
    lead = factories.institution(county=world["a"].county, level=InstitutionLevel.TERTIARY)
    factories.alliance(lead=lead, members=(world["a"],))
    review = file_case_review(world["case_a"], kind=ReviewKind.NEW_TECHNOLOGY, reason="新技术",
                              proposed_points="250.5", user=make_user("hospital", lead.code))
    assert (review.status, review.proposed_points) == (RequestStatus.PENDING, D("250.5000"))


def test_bad_filings_are_refused(world):
    with pytest.raises(CaseRequestError, match="不能为负数"):
        file(world, points="-1")
    with pytest.raises(CaseRequestError, match="不是有效的数字"):
        file(world, points="abc")
    with pytest.raises(CaseRequestError, match="请填写申请理由"):
        file_case_review(world["case_a"], kind=ReviewKind.SPECIAL_CASE, reason="  ", proposed_points="1",
                         user=world["hospital_a"])
    file(world)
    with pytest.raises(CaseRequestError, match="不能重复提交"):
        file(world)
    assert CaseReview.objects.count() == 1


def test_hospital_cannot_decide(world):
    review = file(world)
    with pytest.raises(CaseRequestError, match="只有市、县区医保局"):
        decide_case_review(review, approve=True, final_points="300", user=world["hospital_a"])
    review.refresh_from_db()
    assert review.status == RequestStatus.PENDING


def test_county_of_another_county_cannot_decide(world):
    review = file(world)
    with pytest.raises(CaseRequestError, match="不属于本县区"):
        decide_case_review(review, approve=True, final_points="300", user=world["other_county"])
    decide_case_review(review, approve=True, final_points="280", user=world["county"])
    review.refresh_from_db()
    assert (review.status, review.final_points, review.decided_by) == (
        RequestStatus.APPROVED, D("280.0000"), world["county"],
    )


def test_decision_needs_points_or_comment_and_happens_once(world):
    review = file(world)
    with pytest.raises(CaseRequestError, match="须填写核定点数"):
        decide_case_review(review, approve=True, user=world["city"])
    with pytest.raises(CaseRequestError, match="不能为负数"):
        decide_case_review(review, approve=True, final_points="-0.0001", user=world["city"])
    with pytest.raises(CaseRequestError, match="须填写审核意见"):
        decide_case_review(review, approve=False, comment=" ", user=world["city"])
    decide_case_review(review, approve=False, comment="资料不全", user=world["city"])
    with pytest.raises(CaseRequestError, match="状态为“已驳回”，不能再次审核"):
        decide_case_review(review, approve=True, final_points="1", user=world["city"])
    # A rejected request does not block a new one.
    assert file(world).status == RequestStatus.PENDING
    assert review.history.count() == 2  # filed, rejected


def test_zero_final_points_may_be_approved(world):
    review = decide_case_review(file(world), approve=True, final_points="0", user=world["city"])
    assert review.final_points == D("0.0000")


# --- only approved points enter a run --------------------------------------------------------


def test_without_approval_both_institutions_keep_their_computed_points(world):
    file(world)  # pending: not counted
    rejected_on_b = file_case_review(world["case_b"], kind=ReviewKind.SPECIAL_CASE, reason="x",
                                     proposed_points="900", user=world["hospital_b"])
    decide_case_review(rejected_on_b, approve=False, comment="不符合条件", user=world["city"])
    run = services.start_run("drg", 2025, sync=True)
    # points 100 + 100; PV = (10,000 + 400) / 200 = 52; E = 100 × 52 − 200 = 5,000 each
    assert entitled(run) == {world["a"].code: D("5000.00"), world["b"].code: D("5000.00")}


def test_approved_points_replace_the_computed_points(world):
    decide_case_review(file(world, points="350"), approve=True, final_points="300", user=world["city"])
    run = services.start_run("drg", 2025, sync=True)
    # points 300 + 100 = 400; PV = (10,000 + 400) / 400 = 26.000000
    # E(a) = 300 × 26 − 200 = 7,600; E(b) = 100 × 26 − 200 = 2,400; Σ = 10,000 = B
    assert entitled(run) == {world["a"].code: D("7600.00"), world["b"].code: D("2400.00")}
    result = UnitResult.objects.get(run=run, unit_code=world["a"].code)
    assert D(result.details["point_value"]) == D("26.000000")
    assert result.details["approved_cases"] == 1


def test_run_cannot_be_approved_while_reviews_are_pending(world):
    review = file(world)
    file_case_review(world["case_b"], kind=ReviewKind.NEW_TECHNOLOGY, reason="x", proposed_points="1",
                     user=world["hospital_b"])
    run = services.start_run("drg", 2025, sync=True)
    with pytest.raises(services.SettlementError, match="还有2件特病单议/新技术申请待审核"):
        services.approve_run(run, user=world["city"])
    decide_case_review(review, approve=True, final_points="300", user=world["city"])
    with pytest.raises(services.SettlementError, match="还有1件.*有1件特病单议/新技术申请在本次结算计算开始后才审核"):
        services.approve_run(run, user=world["city"])
    decide_case_review(CaseReview.objects.get(status=RequestStatus.PENDING), approve=False, comment="否",
                       user=world["city"])
    run = services.start_run("drg", 2025, sync=True)  # recomputed with the decisions: now it may be approved
    assert services.approve_run(run, user=world["city"]).status == "approved"


def test_pending_reviews_of_another_year_or_county_do_not_block(world, make_user):
    case_2024 = case(world["a"], factories.person(), "2024-03-01", "2024-03-08", drg="G01")
    file_case_review(case_2024, kind=ReviewKind.SPECIAL_CASE, reason="x", proposed_points="1", user=world["hospital_a"])
    far_case = case(world["far"], factories.person(), "2025-03-01", "2025-03-08", drg="G01")
    file_case_review(far_case, kind=ReviewKind.SPECIAL_CASE, reason="x", proposed_points="1",
                     user=make_user("hospital", world["far"].code))
    budget("330503-二级及以上", "100.00")
    run = services.start_run("drg", 2025, world["a"].county.code, sync=True)
    assert run.status == "computed"
    assert services.approve_run(run, user=world["city"]).status == "approved"


# --- changelist scope ------------------------------------------------------------------------


def test_changelist_is_scoped_and_only_bureau_sees_the_decision_link(client, world):
    from django.urls import reverse

    review = file(world)
    decide_url = reverse("admin:settlement_casereview_decide", args=[review.pk])
    url = reverse("admin:settlement_casereview_changelist")
    client.force_login(world["county"])
    page = client.get(url).content.decode()
    assert world["case_a"].serial in page and decide_url in page
    client.force_login(world["hospital_a"])
    page = client.get(url).content.decode()
    assert world["case_a"].serial in page and decide_url not in page
    client.force_login(world["hospital_b"])
    assert world["case_a"].serial not in client.get(url).content.decode()
    assert client.get(reverse("admin:settlement_casereview_change", args=[review.pk])).status_code == 404
    client.force_login(world["other_county"])
    assert world["case_a"].serial not in client.get(url).content.decode()
    assert client.get(decide_url).status_code == 404
