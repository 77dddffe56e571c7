"""The global-budget application walked through in a real (headless) Chromium, role by role, then the
dashboard a city user opens from the admin home (SPEC §6.4)."""
import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from alliances.models import (
    Alliance, ApplicationStatus, BudgetApplication, BudgetStatus, BudgetWorkflowStep, InstitutionLevel, StepAction,
)
from contracts.models import InsuranceType
from settlement.kpi_aggregates.services import rebuild_year
from settlement.models import Budget, OutpatientClaim, Scheme, VisitType
from tests import factories
from tests.browser import SCREENSHOTS, browser_page, chromium  # noqa: F401  (fixture)

PASSWORD = "pw-Test-2026"
D = Decimal

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# 吴兴区医共体's residents' 普通门诊 统筹支付 per month of the dashboard year, as (lead, grassroots, elsewhere)
# parts. Budget B = 1,080,000.00 (居民) + 720,000.00 (职工) = 1,800,000.00 → 150,000.00 a month.
WUXING_MONTHS = [
    (60000, 50000, 18000),  # 1: 128,000
    (55000, 50000, 16000),  # 2: 121,000
    (70000, 52000, 18000),  # 3: 140,000
    (65000, 50000, 20000),  # 4: 135,000
    (80000, 52000, 20000),  # 5: 152,000 over
    (75000, 54000, 20000),  # 6: 149,000
    (85000, 55000, 20000),  # 7: 160,000 over
    (80000, 58000, 20000),  # 8: 158,000 over
    (70000, 53000, 20000),  # 9: 143,000
    (68000, 50000, 20000),  # 10: 138,000
    (72000, 55000, 20000),  # 11: 147,000
    (90000, 60000, 21000),  # 12: 171,000 over
]
# Σ = 128 + 121 + 140 + 135 + 152 + 149 + 160 + 158 + 143 + 138 + 147 + 171 = 1,742 thousand
WUXING_A = "1,742,000.00"
WUXING_OVER_MONTHS = 4  # May, July, August, December exceed 150,000.00
# 南浔区医共体: B = 900,000.00 (居民) → 75,000.00 a month; 60,000 + 1,000 × month, so none is over.
NANXUN_BUDGET = D("900000.00")


@pytest.fixture
def fast_password_hashing(settings):
    # Four users log in; the production hasher costs a noticeable fraction of a second per login.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def build_world(county, other_county, make_user, year):
    lead = factories.institution(county=county, level=InstitutionLevel.SECONDARY, name="吴兴区人民医院")
    g1 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS, name="八里店镇卫生院")
    g2 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS, name="织里镇卫生院")
    alliance = factories.alliance(lead=lead, members=[g1, g2], code="YGT330502")
    Alliance.objects.filter(pk=alliance.pk).update(name="吴兴区医共体")
    nanxun_lead = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY, name="南浔区人民医院")
    nanxun = factories.alliance(lead=nanxun_lead, code="YGT330503")
    Alliance.objects.filter(pk=nanxun.pk).update(name="南浔区医共体")

    for kind, amount in (("居民", "1080000.00"), ("职工", "720000.00")):
        Budget.objects.create(year=year, scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code,
                              insurance_type=kind, amount=D(amount))
    Budget.objects.create(year=year, scheme=Scheme.ALLIANCE_BUDGET, unit_code=nanxun.code, insurance_type="居民",
                          amount=NANXUN_BUDGET)

    residents = [factories.person(county=county) for _ in range(3)]
    employee = factories.person(county=county, insurance_type=InsuranceType.EMPLOYEE)
    nanxun_residents = [factories.person(county=other_county) for _ in range(2)]
    claims, serial = [], iter(range(1, 10_000))

    def claim(inst, person, day, fund, visit_type=VisitType.GENERAL):
        fund = D(fund)
        personal = (fund * D("0.4")).quantize(D("0.01"))  # personal burden 40 / 140 ≈ 28.57%
        claims.append(OutpatientClaim(
            institution=inst, serial=f"C{next(serial):05d}", person=person, visit_date=day,
            insurance_type=person.insurance_type, visit_type=visit_type, total_cost=fund + personal,
            fund_paid=fund, personal_paid=personal,
        ))

    for month, (at_lead, at_grassroots, elsewhere) in enumerate(WUXING_MONTHS, start=1):
        person = residents[month % 3]
        # The same care the year before at 95% of the cost, so the growth indicators read ≈ 5.26%.
        for when, factor in ((year, D("1")), (year - 1, D("0.95"))):
            day = datetime.date(when, month, 15)
            claim(lead, person, day, at_lead * factor)
            claim(g1 if month % 2 else g2, person, day, at_grassroots * factor)
            claim(lead, employee, day, 9000 * factor)  # employee insurance: not in A
            claim(g1, person, day, 5000 * factor, VisitType.CHRONIC)  # 慢病门诊: not in A
        day = datetime.date(year, month, 15)
        claim(nanxun_lead, person, day, elsewhere)  # treated in 南浔区, still 吴兴区's A
        claim(nanxun_lead, nanxun_residents[month % 2], day, 60000 + 1000 * month)
    OutpatientClaim.objects.bulk_create(claims)

    users = {
        "lead": make_user("hospital", lead.code, username="zongyiyuan"),
        "health": make_user("health", county.code, username="wuxing_weijian"),
        "county": make_user("county", county.code, username="wuxing_yibao"),
        "city": make_user("city", username="shi_yibaoju"),
    }
    return alliance, users


def first_of_next_month(day):
    return (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)


def test_budget_application_walked_by_every_role_then_the_dashboard(
    live_server, transactional_db, fast_password_hashing, make_user, county, other_county, chromium,
):
    year = timezone.localdate().year - 1  # a whole year of claims for the dashboard
    alliance, users = build_world(county, other_county, make_user, year)
    for kpi_year in (year - 1, year):  # the dashboard reads the KPI pre-aggregates of the ORM-built claims
        rebuild_year(kpi_year)
    base = live_server.url
    applications = f"{base}/admin/alliances/budgetapplication/"
    before = timezone.localdate()

    with browser_page(chromium, timeout_ms=15_000) as page:
        def login(user):
            page.goto(f"{base}/admin/login/")
            page.fill("#id_username", user.username)
            page.fill("#id_password", PASSWORD)
            page.click("#login-form input[type=submit]")
            page.wait_for_url(f"{base}/admin/")

        def logout():
            page.click("#logout-form button")
            page.wait_for_url(f"{base}/admin/logout/")
            assert page.locator("#content h1").inner_text() == "登出"

        def tools():
            return page.locator(".object-tools").inner_text()

        def take_step(label, comment):
            page.get_by_role("link", name=label, exact=True).click()
            page.wait_for_url("**/step/**")
            page.fill("#id_comment", comment)
            page.click(f"input[type=submit][value='确认{label}']")
            page.wait_for_url("**/change/")
            assert page.locator(".messagelist .success").inner_text() == f"已完成“{label}”"

        def status_shown():
            return page.locator(".field-status .readonly").inner_text()

        # 1. The lead hospital fills the KF annex application in the admin and submits it.
        login(users["lead"])
        assert page.locator("#alliance-dashboard-module").count() == 1  # hospitals read their budgets
        page.goto(applications)
        page.click(".object-tools a.addlink")
        page.wait_for_url("**/add/")
        page.select_option("#id_alliance", label="吴兴区医共体（YGT330502）")
        page.fill("#id_year", str(year + 1))
        for name in ("administration", "staff", "business", "drugs", "finance", "performance"):
            page.check(f"#id_unified_{name}")
        page.fill("#id_contact_name", "张三")
        page.fill("#id_contact_phone", "0572-2222222")
        page.click("input[name=_continue]")
        page.wait_for_url("**/change/")
        application_url = page.url
        assert status_shown() == "草稿（总医院填写中）"
        # Submitting with 信息统一 still unchecked is refused in Chinese and the draft stays a draft.
        page.get_by_role("link", name="总医院提交申请", exact=True).click()
        page.click("input[type=submit][value='确认总医院提交申请']")
        page.wait_for_url("**/change/")
        assert "信息统一未勾选" in page.locator(".messagelist .error").inner_text()
        assert status_shown() == "草稿（总医院填写中）"
        page.check("#id_unified_information")
        page.click("input[name=_continue]")
        page.wait_for_url(application_url)
        take_step("总医院提交申请", "请予审批")
        assert status_shown() == "已申请（待卫健委确认七统一）"
        assert "卫健委确认七统一" not in tools()
        logout()

        # 2. The county health commission confirms 七统一; it may not approve, and has no dashboard.
        login(users["health"])
        assert page.locator("#alliance-dashboard-module").count() == 0
        page.goto(applications)
        page.locator("#result_list tbody tr").first.locator("a").first.click()
        page.wait_for_url(application_url)
        assert "市医保局审批通过" not in tools() and "县区医保局确认" not in tools()
        take_step("卫健委确认七统一", "经核实，该医共体已实现行政、人员、业务、药械、财务、绩效、信息统一")
        assert status_shown() == "卫健委已确认七统一（待县区医保局确认）"
        logout()

        # 3. The county bureau confirms.
        login(users["county"])
        page.goto(application_url)
        assert "市医保局审批通过" not in tools()
        take_step("县区医保局确认", "情况属实")
        assert status_shown() == "县区医保局已确认（待市医保局审批）"
        logout()

        # 4. A wrong role: the health user sees no approve button on the county-confirmed application,
        #    and posting the approval page anyway is refused in Chinese and changes nothing.
        login(users["health"])
        page.goto(application_url)
        assert status_shown() == "县区医保局已确认（待市医保局审批）"
        assert "市医保局审批通过" not in tools() and "卫健委确认七统一" not in tools()
        page.goto(f"{application_url.removesuffix('change/')}step/approve/")
        page.fill("#id_comment", "同意")
        page.click("input[type=submit][value='确认市医保局审批通过']")
        page.wait_for_url(application_url)
        assert page.locator(".messagelist .error").inner_text() == "只有市医保局可以审批总额付费申请"
        assert status_shown() == "县区医保局已确认（待市医保局审批）"
        refused = page.goto(f"{base}/admin/alliances/dashboard/")
        assert refused.status == 403
        page.goto(f"{base}/admin/")
        logout()

        # 5. The city bureau approves; payment applies from the first day of next month.
        login(users["city"])
        page.goto(application_url)
        take_step("市医保局审批通过", "同意自下月起实行总额付费")
        assert status_shown() == "已批准（实行总额付费）"
        effective_text = page.locator(".field-effective_from .readonly").inner_text()
        step_rows = page.locator("#steps-group tbody tr.form-row")
        history = [
            (row.locator("td.field-action").inner_text(), row.locator("td.field-actor").inner_text(),
             row.locator("td.field-to_status").inner_text())
            for row in step_rows.all()
        ]

        page.goto(f"{base}/admin/alliances/alliance/")
        wuxing_row = page.locator("#result_list tbody tr", has_text="吴兴区医共体")
        assert wuxing_row.locator("td.field-budget_status").inner_text() == "已批准（实行总额付费）"
        assert page.locator("#result_list tbody tr", has_text="南浔区医共体").locator(
            "td.field-budget_status").inner_text() == "未申请"
        assert page.locator(".object-tools a.alliance-dashboard").inner_text() == "医共体运行监测"
        wuxing_row.get_by_role("link", name=alliance.code).click()
        page.wait_for_url("**/change/")
        alliance_effective_text = page.locator(".field-budget_effective_from .readonly").inner_text()

        # 6. The dashboard, from the card on the admin home, switched to last year by its year menu.
        page.goto(f"{base}/admin/")
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "budget_admin_index.png"))
        card = page.locator("#alliance-dashboard-module")
        assert card.locator("h2").inner_text() == "医共体运行监测"
        card.locator("h2 a").click()
        page.wait_for_url(f"{base}/admin/alliances/dashboard/")
        with page.expect_navigation():
            page.select_option("select[name=year]", str(year))
        assert page.url.endswith(f"?year={year}")
        assert page.locator("#content h1").inner_text() == f"{year}年医共体总额付费监测"
        blocks = page.locator(".dash-block", has=page.locator(".budget-chart"))
        assert blocks.count() == 2
        wuxing = blocks.filter(has_text="吴兴区医共体")
        wuxing_head = wuxing.locator("h3").inner_text()
        wuxing_figures = wuxing.locator("p").first.inner_text()
        # ECharts draws the bars (SVG) from the block's JSON; the table under it holds the same figures.
        wuxing.locator('.budget-chart[data-rendered="1"] svg').wait_for()
        chart_box = wuxing.locator(".budget-chart svg").first.bounding_box()
        wuxing_cells = wuxing.locator(".budget-table tbody tr").first.locator("td")
        bar_count = wuxing_cells.count()
        over_count = wuxing.locator(".budget-table td.budget-over").count()
        month_figures = [wuxing_cells.nth(i).inner_text() for i in range(bar_count)]
        nanxun_figures = blocks.filter(has_text="南浔区医共体").locator("p").first.inner_text()
        nanxun_over = blocks.filter(has_text="南浔区医共体").locator(".budget-table td.budget-over").count()
        county_blocks = page.locator(".dash-block", has_text="县域内就诊率").count()
        page.screenshot(path=str(SCREENSHOTS / "budget_dashboard.png"), full_page=True)
    after = timezone.localdate()

    # What the pages showed, against the database and hand-worked figures.
    application = BudgetApplication.objects.get()
    assert application.status == ApplicationStatus.APPROVED and application.year == year + 1
    approved_on = timezone.localdate(application.approved_at)
    assert before <= approved_on <= after
    effective = first_of_next_month(approved_on)
    assert application.effective_from == effective
    assert Alliance.objects.get(pk=alliance.pk).budget_status == BudgetStatus.APPROVED
    assert Alliance.objects.get(pk=alliance.pk).budget_effective_from == effective
    shown = f"{effective.year}年{effective.month}月{effective.day}日"
    assert effective_text == shown and alliance_effective_text == shown
    assert wuxing_head.endswith(f"已批准（实行总额付费），自{shown}起")

    assert history == [
        ("总医院提交申请", "zongyiyuan", "已申请（待卫健委确认七统一）"),
        ("卫健委确认七统一", "wuxing_weijian", "卫健委已确认七统一（待县区医保局确认）"),
        ("县区医保局确认", "wuxing_yibao", "县区医保局已确认（待市医保局审批）"),
        ("市医保局审批通过", "shi_yibaoju", "已批准（实行总额付费）"),
    ]
    steps = list(BudgetWorkflowStep.objects.order_by("acted_at").values_list("action", "actor__username", "comment"))
    assert steps == [
        (StepAction.SUBMIT, "zongyiyuan", "请予审批"),
        (StepAction.HEALTH_CONFIRM, "wuxing_weijian", "经核实，该医共体已实现行政、人员、业务、药械、财务、绩效、信息统一"),
        (StepAction.COUNTY_CONFIRM, "wuxing_yibao", "情况属实"),
        (StepAction.APPROVE, "shi_yibaoju", "同意自下月起实行总额付费"),
    ]  # the refused submission and the health user's refused approval left no step

    assert "年度预算B：1,800,000.00 元" in wuxing_figures and "月度预算：150,000.00 元" in wuxing_figures
    assert f"全年实际A：{WUXING_A} 元" in wuxing_figures
    assert (bar_count, over_count) == (12, WUXING_OVER_MONTHS)
    assert chart_box["width"] > 0 and chart_box["height"] > 0
    # December's A is the year's largest, 171,000.00; January's 128,000.00.
    assert (month_figures[11], month_figures[0]) == ("171,000.00", "128,000.00")
    # 南浔区: B = 900,000.00 → 75,000.00 a month; A = Σ (60,000 + 1,000 m) = 720,000 + 78,000.
    assert "月度预算：75,000.00 元" in nanxun_figures and "全年实际A：798,000.00 元" in nanxun_figures
    assert nanxun_over == 0
    assert county_blocks == 4  # two alliances and two counties, each with its KPI table
