"""Admin pages of the global budget: plan form (reserve cap), allocation page, application form."""
from decimal import Decimal

import pytest

from alliances.models import AllianceBudgetPlan, ApplicationStatus, BudgetApplication, InstitutionLevel, MemberAllocation
from settlement.models import Budget, Scheme
from tests import factories

D = Decimal


@pytest.fixture
def world(county, make_user):
    lead = factories.institution(county=county)
    g1 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    alliance = factories.alliance(lead=lead, members=[g1])
    return {"alliance": alliance, "lead": lead, "g1": g1, "county_user": make_user("county", county.code),
            "lead_user": make_user("hospital", lead.code), "member_user": make_user("hospital", g1.code)}


def plan_form(alliance, reserve):
    return {
        "alliance": alliance.pk, "year": "2025", "insurance_type": "居民", "annual_budget": "1000000.00",
        "risk_reserve": reserve, "out_of_city_history_1": "50000.00", "out_of_city_history_2": "",
        "out_of_city_history_3": "",
        "city_items-TOTAL_FORMS": "0", "city_items-INITIAL_FORMS": "0",
        "city_items-MIN_NUM_FORMS": "0", "city_items-MAX_NUM_FORMS": "1000",
        "allocations-TOTAL_FORMS": "0", "allocations-INITIAL_FORMS": "0",
        "allocations-MIN_NUM_FORMS": "0", "allocations-MAX_NUM_FORMS": "1000",
    }


def test_plan_admin_refuses_reserve_over_ten_percent(world, client):
    client.force_login(world["county_user"])
    response = client.post("/admin/alliances/alliancebudgetplan/add/", plan_form(world["alliance"], "100000.01"))
    assert response.status_code == 200
    assert "超过年度预算总额的10%" in response.content.decode()
    assert not AllianceBudgetPlan.objects.exists() and not Budget.objects.exists()

    response = client.post("/admin/alliances/alliancebudgetplan/add/", plan_form(world["alliance"], "100000.00"))
    assert response.status_code == 302
    # B = 1,000,000.00 − 100,000.00; allocatable = B − 50,000.00 out-of-city
    assert Budget.objects.get(scheme=Scheme.ALLIANCE_BUDGET, unit_code=world["alliance"].code).amount == D("900000.00")
    assert AllianceBudgetPlan.objects.get().allocatable == D("850000.00")


def test_allocation_page_for_the_lead_hospital_only(world, client):
    from alliances import services_budget as svc

    plan = svc.save_budget_plan(world["county_user"], world["alliance"], 2025, "居民", D("1000.00"), D("0"))
    url = f"/admin/alliances/alliancebudgetplan/{plan.pk}/allocate/"

    client.force_login(world["member_user"])
    assert client.get(url, follow=True).redirect_chain[-1][0].endswith(f"/{plan.pk}/change/")

    client.force_login(world["lead_user"])
    assert "分配到成员机构" in client.get(f"/admin/alliances/alliancebudgetplan/{plan.pk}/change/").content.decode()
    page = client.post(url, {f"amount_{world['lead'].pk}": "600.00", f"amount_{world['g1'].pk}": "399.99"})
    assert page.status_code == 200 and "差额0.01元" in page.content.decode()
    assert not MemberAllocation.objects.exists()
    page = client.post(url, {f"amount_{world['lead'].pk}": "600.00", f"amount_{world['g1'].pk}": "abc"})
    assert "不是有效金额" in page.content.decode()
    response = client.post(url, {f"amount_{world['lead'].pk}": "600.00", f"amount_{world['g1'].pk}": "400.00"})
    assert response.status_code == 302
    assert MemberAllocation.objects.count() == 2


def test_application_admin_form(world, client):
    data = {
        "alliance": world["alliance"].pk, "year": "2026", "contact_name": "张三", "contact_phone": "123",
        "statement": "申请", "unified_notes": "",
        "steps-TOTAL_FORMS": "0", "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "0",
    }
    client.force_login(world["member_user"])
    response = client.post("/admin/alliances/budgetapplication/add/", data)
    assert response.status_code == 200  # the member's choice list is empty: the alliance is not offered
    assert not BudgetApplication.objects.exists()

    client.force_login(world["lead_user"])
    response = client.post("/admin/alliances/budgetapplication/add/", data)
    assert response.status_code == 302
    application = BudgetApplication.objects.get()
    assert application.status == ApplicationStatus.DRAFT and application.created_by == world["lead_user"]
    page = client.get(f"/admin/alliances/budgetapplication/{application.pk}/change/").content.decode()
    assert "总医院提交申请" in page and "打印申请书" in page
    again = client.post("/admin/alliances/budgetapplication/add/", data)
    assert "不能重复申请" in again.content.decode()


@pytest.mark.parametrize("role, allowed", [
    ("city", True), ("county", True), ("auditor", True), ("lead", True), ("health", False),
])
def test_dashboard_link_on_admin_home_and_alliance_changelist_only_for_who_may_open_it(
    world, client, make_user, county, role, allowed,
):
    user = {
        "city": lambda: make_user("city"), "auditor": lambda: make_user("auditor"),
        "county": lambda: world["county_user"], "lead": lambda: world["lead_user"],
        "health": lambda: make_user("health", county.code),
    }[role]()
    client.force_login(user)
    card = 'id="alliance-dashboard-module"'
    link = 'href="/admin/alliances/dashboard/"'

    home = client.get("/admin/").content.decode()
    assert (card in home and "医共体运行监测" in home and link in home) is allowed
    assert "机构与医共体" in home  # the app list is still there below the card
    changelist = client.get("/admin/alliances/alliance/").content.decode()
    assert (link in changelist) is allowed
    assert client.get("/admin/alliances/dashboard/").status_code == (200 if allowed else 403)


def test_alliance_changelist_keeps_the_spreadsheet_buttons(world, client, make_user):
    client.force_login(make_user("city"))
    page = client.get("/admin/alliances/alliance/").content.decode()
    assert 'class="portal-import"' in page and 'class="portal-export"' in page
    assert 'class="alliance-dashboard"' in page
