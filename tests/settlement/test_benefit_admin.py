"""Admin of the benefit engine: the 待遇测算核对 page (differences only, sorted, filtered, totals, xlsx,
scope), derivations on the claim and case pages, relocation revocation, table checks and approval."""
import io
from decimal import Decimal as D

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from settlement.benefits.models import BenefitTable
from settlement.benefits.selectors import differing
from settlement.benefits.services import compute_expected
from settlement.models import ApprovalStatus, Job
from tests.settlement import benefit_builders as b
from tests.settlement.benefit_builders import YEAR, day

pytestmark = pytest.mark.django_db

RECONCILE = "admin:settlement_benefitfigure_changelist"


@pytest.fixture
def computed():
    place = b.place()
    b.approved_table()
    person = place["resident"]
    rows = {
        # 200 × 80% = 160.00, reported right
        "right": b.claim(person, place["基层"], day(1, 5), "200.00", fund="160.00", serial="MZ-RIGHT"),
        # (1,200 − 200) × 60% = 600.00, reported 650.00: +50.00
        "over": b.claim(person, place["二级"], day(1, 6), "1200.00", fund="650.00", serial="MZ-OVER"),
        # (10,000 − 1,000) × 60% = 5,400.00, reported 5,000.00: −400.00
        "under": b.case(person, place["三级"], day(2, 1), day(2, 9), "10000.00", fund="5000.00", serial="ZY-UNDER"),
        # 1 分 off is within BEN01's tolerance
        "cent": b.claim(person, place["二级"], day(1, 7), "100.00", fund="60.01", serial="MZ-CENT"),
    }
    compute_expected(YEAR)
    return place, rows


def test_ben01_is_a_thin_query_over_the_figures(computed):
    _, rows = computed
    found = {(f.serial, f.fund_paid, f.expected, f.difference) for f in differing(YEAR)}
    assert found == {("MZ-OVER", D("650.00"), D("600.00"), D("50.00")), ("ZY-UNDER", D("5000.00"), D("5400.00"), D("-400.00"))}


def test_reconcile_page_lists_differences_sorted_with_totals(client, make_user, computed):
    client.force_login(make_user("city"))
    page = client.get(reverse(RECONCILE) + f"?year={YEAR}").content.decode()
    assert "待遇测算核对" in page
    assert page.index("MZ-OVER") < page.index("ZY-UNDER")  # largest difference first
    assert "MZ-RIGHT" not in page and "MZ-CENT" not in page
    assert "按机构汇总" in page
    ascending = client.get(reverse(RECONCILE) + f"?year={YEAR}&o=10").content.decode()  # difference, ascending
    assert ascending.index("ZY-UNDER") < ascending.index("MZ-OVER")
    everything = client.get(reverse(RECONCILE) + "?differs=all").content.decode()
    assert "MZ-RIGHT" in everything and "MZ-CENT" in everything


def test_reconcile_filters_by_institution_level_and_visit_type(client, make_user, computed):
    place, _ = computed
    client.force_login(make_user("city"))
    by_level = client.get(reverse(RECONCILE) + "?level=三级").content.decode()
    assert "ZY-UNDER" in by_level and "MZ-OVER" not in by_level
    by_visit = client.get(reverse(RECONCILE) + "?visit_type=普通门诊").content.decode()
    assert "MZ-OVER" in by_visit and "ZY-UNDER" not in by_visit
    by_inst = client.get(reverse(RECONCILE) + f"?q={place['二级'].code}").content.decode()
    assert "MZ-OVER" in by_inst and "ZY-UNDER" not in by_inst


def test_reconcile_export_is_the_filtered_list_with_totals(client, make_user, computed):
    place, _ = computed
    client.force_login(make_user("city"))
    response = client.get(reverse("admin:settlement_benefitfigure_export") + f"?year={YEAR}")
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    listed = [[c.value for c in row] for row in book["核对清单"].iter_rows()]
    assert listed[0] == ["年度", "就医类型", "单据号", "机构编码", "机构名称", "机构等级", "门诊类型", "身份证号", "日期",
                         "政策范围内费用", "统筹支付", "应付统筹", "差额"]
    assert sorted(row[2] for row in listed[1:]) == ["MZ-OVER", "ZY-UNDER"]
    totals = {row[0].value: row[5].value for row in book["机构汇总"].iter_rows(min_row=2)}
    assert totals == {place["二级"].code: 50, place["三级"].code: -400}


def test_hospital_sees_only_its_own_differences(client, make_user, computed):
    place, _ = computed
    client.force_login(make_user("hospital", place["二级"].code))
    page = client.get(reverse(RECONCILE)).content.decode()
    assert "MZ-OVER" in page and "ZY-UNDER" not in page
    case_figure = differing(YEAR).get(serial="ZY-UNDER")
    assert client.get(reverse("admin:settlement_benefitfigure_change", args=[case_figure.pk])).status_code in (302, 403, 404)


def test_claim_page_shows_the_derivation_line_by_line(client, make_user, computed):
    _, rows = computed
    client.force_login(make_user("city"))
    page = client.get(reverse("admin:settlement_outpatientclaim_change", args=[rows["over"].pk])).content.decode()
    for line in ("政策范围内费用：1200.00元", "起付标准200.00元，报销比例60.00%", "计入起付：200.00元",
                 "限额前统筹：(1200.00 − 200.00) × 60.00% = 600.00元", "应付统筹：600.00元；上报统筹支付：650.00元；差额：50.00元"):
        assert line in page


def test_case_page_names_the_stay_it_is_joined_to(client, make_user):
    place = b.place()
    b.approved_table()
    person = place["resident"]
    first = b.case(person, place["二级"], day(3, 1), day(3, 10), "10000.00", serial="ZY-FIRST")
    b.referral(person, place["二级"], place["三级"], day(3, 10), "上转")
    second = b.case(person, place["三级"], day(3, 13), day(3, 25), "20000.00", serial="ZY-SECOND")
    compute_expected(YEAR)
    client.force_login(make_user("city"))
    page = client.get(reverse("admin:settlement_inpatientcase_change", args=[second.pk])).content.decode()
    assert f"转诊合并起付：与{first.institution.name}住院病例ZY-FIRST（{YEAR}-03-10出院）视同一次住院" in page
    assert "起付标准 max(0, 1000.00 − 600.00) 元" in page


def test_relocation_page_says_the_year_is_revoked_and_why(client, make_user):
    place = b.place()
    person = place["resident"]
    first = b.relocation(person, day(1, 10), "460100")
    client.force_login(make_user("city"))
    listing = client.get(reverse("admin:settlement_relocation_changelist")).content.decode()
    assert "有效" in listing
    b.relocation(person, day(9, 1), "460100")
    listing = client.get(reverse("admin:settlement_relocation_changelist")).content.decode()
    assert f"已取消（{YEAR}年备案2次）" in listing
    page = client.get(reverse("admin:settlement_relocation_change", args=[first.pk])).content.decode()
    assert f"{YEAR}年备案2次（{YEAR}-01-10、{YEAR}-09-01），一年内备案2次及以上，取消当年度异地安置待遇" in page


def test_table_page_shows_checks_and_approval_refuses_by_clause(client, make_user):
    b.rules([row for row in b.CONFORMANT if row[:3] != ("居民", "住院", "基层")])
    b.policy()
    table = BenefitTable.objects.create(year=YEAR)
    client.force_login(make_user("city"))
    page = client.get(reverse("admin:settlement_benefittable_change", args=[table.pk])).content.decode()
    assert "✘ 不符合 居民住院基层报销比例高于其他各级医疗机构不少于10个百分点" in page
    assert "✔ 符合 居民基层门诊不设起付标准" in page
    changelist = reverse("admin:settlement_benefittable_changelist")
    ask = {"action": "approve_selected", "_selected_action": [table.pk]}
    # First a confirmation page with what would be locked (four eyes, issue 18); nothing approved yet.
    confirm = client.post(changelist, ask).content.decode()
    assert "确认审批待遇政策表" in confirm and "不符合1项" in confirm and "规则条数" in confirm
    assert BenefitTable.objects.get(pk=table.pk).status == ApprovalStatus.DRAFT
    response = client.post(changelist, {**ask, "confirmed": "yes"}, follow=True)
    assert "缺少居民住院基层的一般规则" in response.content.decode()
    assert BenefitTable.objects.get(pk=table.pk).status == ApprovalStatus.DRAFT


def test_compute_action_runs_as_a_job(client, make_user, computed, django_capture_on_commit_callbacks):
    client.force_login(make_user("city"))
    table = BenefitTable.objects.get(year=YEAR)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:settlement_benefittable_changelist"),
                    {"action": "compute_selected", "_selected_action": [table.pk]}, follow=True)
    job = Job.objects.get(kind="benefits")
    assert job.status == "succeeded", job.message
    assert job.message == f"{YEAR}年度应付统筹测算完成：门诊3笔，住院1例，统筹支付与应付统筹不一致2笔。"
    assert job.counts == {"claims": 3, "cases": 1, "differing": 2, "unruled": 0}


def test_matching_claims_are_listed_under_all_and_re_derived_on_their_page(client, make_user, computed):
    from settlement.benefits.models import UnmatchedFigure

    _, rows = computed
    # only the two differing figures are stored; the matching claims are rows of the view
    assert sorted(UnmatchedFigure.objects.values_list("serial", flat=True)) == ["MZ-OVER", "ZY-UNDER"]
    client.force_login(make_user("city"))
    everything = client.get(reverse(RECONCILE) + "?differs=all").content.decode()
    assert "一致（相差不超过0.01元）" in everything and "应付统筹与差额只合计不一致的记录" in everything
    page = client.get(reverse("admin:settlement_outpatientclaim_change", args=[rows["cent"].pk])).content.decode()
    # (100.00 − 0, the 二级 deductible already used by MZ-OVER) × 60% = 60.00; reported 60.01
    for line in ("计入起付：0.00元", "限额前统筹：(100.00 − 0.00) × 60.00% = 60.00元",
                 "应付统筹：60.00元；上报统筹支付：60.01元；差额：0.01元"):
        assert line in page
