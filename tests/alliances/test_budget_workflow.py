"""Global-budget application workflow (SPEC §6.4): lead hospital → health commission → county → city."""
import datetime
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from alliances import services_budget as svc
from alliances.models import (
    Alliance, ApplicationStatus, BudgetApplication, BudgetStatus, BudgetWorkflowStep, InstitutionLevel, StepAction,
)
from tests import factories

SEVEN = {name: True for name, _ in svc.SEVEN_UNIFIED}


@pytest.fixture
def world(db, county, other_county, make_user):
    lead = factories.institution(county=county, level=InstitutionLevel.SECONDARY, name="吴兴区人民医院")
    member = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS, name="八里店卫生院")
    left = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS, name="已退出卫生院")
    alliance = factories.alliance(lead=lead, members=[member])
    from alliances.models import Membership

    Membership.objects.create(
        alliance=alliance, institution=left, joined_on=datetime.date(2019, 1, 1), left_on=datetime.date(2019, 12, 31),
    )
    other_lead = factories.institution(county=other_county)
    # Users are made on first use: creating a user syncs the role groups, which is not free.
    recipes = {
        "lead_user": ("hospital", lead.code),
        "member_user": ("hospital", member.code),
        "other_lead_user": ("hospital", other_lead.code),
        "health": ("health", county.code),
        "other_health": ("health", other_county.code),
        "county": ("county", county.code),
        "other_county": ("county", other_county.code),
        "city": ("city", None),
        "auditor": ("auditor", None),
    }
    return World(alliance, recipes, make_user)


class World(dict):
    def __init__(self, alliance, recipes, make_user):
        super().__init__(alliance=alliance)
        self.recipes, self.make_user = recipes, make_user

    def __missing__(self, key):
        self[key] = self.make_user(*self.recipes[key])
        return self[key]


def draft(world, **extra):
    fields = {**SEVEN, "contact_name": "张三", "contact_phone": "0572-1234567", **extra}
    return svc.create_application(world["lead_user"], world["alliance"], 2026, **fields)


def at(day):
    """Freeze timezone.now() at noon Beijing time on `day`."""
    moment = timezone.make_aware(datetime.datetime(day.year, day.month, day.day, 12, 0))
    return mock.patch("django.utils.timezone.now", return_value=moment)


def through_county(world):
    app = svc.submit_application(world["lead_user"], draft(world))
    app = svc.confirm_unified(world["health"], app, "符合七统一要求")
    return svc.confirm_by_county(world["county"], app, "情况属实")


def test_full_path_records_each_step_and_sets_effective_month(world):
    app = draft(world)
    assert app.status == ApplicationStatus.DRAFT
    with at(datetime.date(2026, 3, 15)):
        app = svc.submit_application(world["lead_user"], app, "请审批")
    assert app.status == ApplicationStatus.SUBMITTED
    # Members in force at submission: the lead and the grassroots member, not the one that left in 2019.
    assert [row["name"] for row in app.member_snapshot] == ["吴兴区人民医院", "八里店卫生院"]
    assert Alliance.objects.get().budget_status == BudgetStatus.APPLIED

    with at(datetime.date(2026, 3, 25)):
        app = svc.confirm_unified(world["health"], app, "符合七统一要求")
    assert Alliance.objects.get().budget_status == BudgetStatus.HEALTH_CONFIRMED
    with at(datetime.date(2026, 4, 2)):
        app = svc.confirm_by_county(world["county"], app, "情况属实")
    assert Alliance.objects.get().budget_status == BudgetStatus.COUNTY_CONFIRMED
    with at(datetime.date(2026, 4, 20)):
        app = svc.approve_application(world["city"], app, "同意")

    alliance = Alliance.objects.get()
    assert alliance.budget_status == BudgetStatus.APPROVED
    assert alliance.budget_effective_from == datetime.date(2026, 5, 1)
    assert app.effective_from == datetime.date(2026, 5, 1)

    steps = list(BudgetWorkflowStep.objects.filter(application=app).values_list(
        "action", "from_status", "to_status", "comment", "actor__username",
    ))
    assert steps == [
        (StepAction.SUBMIT, "草稿", "已申请", "请审批", world["lead_user"].username),
        (StepAction.HEALTH_CONFIRM, "已申请", "卫健已确认", "符合七统一要求", world["health"].username),
        (StepAction.COUNTY_CONFIRM, "卫健已确认", "县区已确认", "情况属实", world["county"].username),
        (StepAction.APPROVE, "县区已确认", "已批准", "同意", world["city"].username),
    ]
    assert [s.acted_at.date() for s in BudgetWorkflowStep.objects.filter(application=app)] == [
        datetime.date(2026, 3, 15), datetime.date(2026, 3, 25), datetime.date(2026, 4, 2), datetime.date(2026, 4, 20),
    ]
    # simple_history keeps every version of the application and of the alliance's status.
    assert app.history.count() == 5  # created + four transitions
    assert set(alliance.history.values_list("budget_status", flat=True)) >= {"已申请", "已批准"}


@pytest.mark.parametrize("day, expected", [
    (datetime.date(2026, 12, 31), datetime.date(2027, 1, 1)),
    (datetime.date(2026, 12, 1), datetime.date(2027, 1, 1)),
    (datetime.date(2026, 1, 31), datetime.date(2026, 2, 1)),
    (datetime.date(2028, 2, 29), datetime.date(2028, 3, 1)),
])
def test_effective_from_is_first_day_of_next_month(world, day, expected):
    with at(day - datetime.timedelta(days=1)):
        app = through_county(world)
    with at(day):
        app = svc.approve_application(world["city"], app, "同意")
    assert app.effective_from == expected
    assert Alliance.objects.get().budget_effective_from == expected


def test_only_lead_hospital_staff_may_apply(world):
    for who in ("member_user", "other_lead_user", "county", "health", "city"):
        with pytest.raises(PermissionDenied, match="总医院"):
            svc.create_application(world[who], world["alliance"], 2026, **SEVEN, contact_name="李四", contact_phone="1")
    assert not BudgetApplication.objects.exists()


def test_member_hospital_cannot_submit_leads_draft(world):
    app = draft(world)
    with pytest.raises(PermissionDenied, match="总医院"):
        svc.submit_application(world["member_user"], app)
    assert BudgetApplication.objects.get().status == ApplicationStatus.DRAFT
    assert not BudgetWorkflowStep.objects.exists()


def test_submit_requires_all_seven_unified_items(world):
    app = draft(world, unified_finance=False, unified_information=False)
    with pytest.raises(ValidationError, match="财务统一、信息统一"):
        svc.submit_application(world["lead_user"], app)
    assert BudgetApplication.objects.get().status == ApplicationStatus.DRAFT
    assert Alliance.objects.get().budget_status == BudgetStatus.NONE


def test_second_open_application_is_refused(world):
    draft(world)
    with pytest.raises(ValidationError, match="不能重复申请"):
        draft(world)


def test_health_step_refuses_other_roles_and_counties(world):
    app = svc.submit_application(world["lead_user"], draft(world))
    for who in ("other_health", "county", "city", "lead_user", "auditor"):
        with pytest.raises(PermissionDenied, match="卫健委"):
            svc.confirm_unified(world[who], app, "")
    assert BudgetApplication.objects.get().status == ApplicationStatus.SUBMITTED


def test_county_step_refuses_other_county_and_out_of_order(world):
    app = svc.submit_application(world["lead_user"], draft(world))
    # The county bureau may not skip the health commission.
    with pytest.raises(ValidationError, match="不能执行"):
        svc.confirm_by_county(world["county"], app, "")
    app = svc.confirm_unified(world["health"], app, "")
    for who in ("other_county", "health", "lead_user"):
        with pytest.raises(PermissionDenied, match="医保局"):
            svc.confirm_by_county(world[who], app, "")
    assert BudgetApplication.objects.get().status == ApplicationStatus.HEALTH_CONFIRMED


def test_county_user_cannot_take_the_city_approval(world):
    app = through_county(world)
    for who in ("county", "health", "lead_user", "auditor"):
        with pytest.raises(PermissionDenied, match="市医保局"):
            svc.approve_application(world[who], app, "同意")
    assert Alliance.objects.get().budget_status == BudgetStatus.COUNTY_CONFIRMED
    assert BudgetApplication.objects.get().effective_from is None


def test_city_cannot_approve_before_county_confirms(world):
    app = svc.submit_application(world["lead_user"], draft(world))
    with pytest.raises(ValidationError, match="不能执行"):
        svc.approve_application(world["city"], app, "")


def test_return_needs_comment_and_the_current_reviewer_then_resubmit(world):
    app = svc.submit_application(world["lead_user"], draft(world))
    with pytest.raises(ValidationError, match="退回意见"):
        svc.return_application(world["health"], app, "  ")
    with pytest.raises(PermissionDenied):
        svc.return_application(world["county"], app, "county is not the reviewer yet")
    app = svc.return_application(world["health"], app, "信息统一未落实")
    assert app.status == ApplicationStatus.RETURNED
    assert Alliance.objects.get().budget_status == BudgetStatus.REJECTED
    step = BudgetWorkflowStep.objects.get(action=StepAction.RETURN)
    assert (step.from_status, step.to_status, step.comment) == ("已申请", "已退回", "信息统一未落实")

    app = svc.update_application(world["lead_user"], app, unified_notes="已统一信息平台")
    app = svc.submit_application(world["lead_user"], app)
    assert app.status == ApplicationStatus.SUBMITTED


def test_withdrawal_by_city_requires_reason(world):
    app = through_county(world)
    app = svc.approve_application(world["city"], app, "")
    with pytest.raises(ValidationError, match="退出原因"):
        svc.withdraw_alliance(world["city"], app, "")
    with pytest.raises(PermissionDenied, match="市医保局"):
        svc.withdraw_alliance(world["county"], app, "考核不合格")
    assert Alliance.objects.get().budget_status == BudgetStatus.APPROVED

    app = svc.withdraw_alliance(world["city"], app, "连续两年考核不合格")
    assert app.status == ApplicationStatus.WITHDRAWN
    assert app.withdrawal_reason == "连续两年考核不合格"
    assert Alliance.objects.get().budget_status == BudgetStatus.WITHDRAWN
    step = BudgetWorkflowStep.objects.get(action=StepAction.WITHDRAW)
    assert (step.from_status, step.to_status) == ("已批准", "已退出")
    # Once out, the lead hospital may apply again.
    assert draft(world).status == ApplicationStatus.DRAFT


def test_withdrawal_only_from_approved(world):
    app = through_county(world)
    with pytest.raises(ValidationError, match="不能执行"):
        svc.withdraw_alliance(world["city"], app, "原因")


def test_allowed_actions_follow_role_and_stage(world):
    app = draft(world)
    assert svc.allowed_actions(app, world["lead_user"]) == [StepAction.SUBMIT]
    assert svc.allowed_actions(app, world["member_user"]) == []
    app = svc.submit_application(world["lead_user"], app)
    assert svc.allowed_actions(app, world["health"]) == [StepAction.HEALTH_CONFIRM, StepAction.RETURN]
    assert svc.allowed_actions(app, world["other_health"]) == []
    assert svc.allowed_actions(app, world["county"]) == []
    assert svc.allowed_actions(app, world["city"]) == []


# --- Admin: buttons per role, step pages, printable document, scope ---------------------------


def test_admin_step_buttons_and_print(world, client):
    app = svc.submit_application(world["lead_user"], draft(world))
    url = f"/admin/alliances/budgetapplication/{app.pk}/change/"

    client.force_login(world["health"])
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "卫健委确认七统一" in text and "市医保局审批通过" not in text

    response = client.post(
        f"/admin/alliances/budgetapplication/{app.pk}/step/health_confirm/", {"comment": "符合要求"},
    )
    assert response.status_code == 302
    assert BudgetApplication.objects.get().status == ApplicationStatus.HEALTH_CONFIRMED

    printable = client.get(f"/admin/alliances/budgetapplication/{app.pk}/print/")
    body = printable.content.decode()
    assert printable.status_code == 200
    assert "关于医保基金总额付费的请示" in body and "八里店卫生院" in body and "符合要求" in body

    client.force_login(world["other_health"])
    assert client.get(url).status_code == 404
    assert client.get(f"/admin/alliances/budgetapplication/{app.pk}/print/").status_code == 404
    refused = client.post(f"/admin/alliances/budgetapplication/{app.pk}/step/county_confirm/", {"comment": ""})
    assert refused.status_code == 404
    assert BudgetApplication.objects.get().status == ApplicationStatus.HEALTH_CONFIRMED


def test_admin_step_by_wrong_role_shows_chinese_error_and_changes_nothing(world, client):
    app = svc.submit_application(world["lead_user"], draft(world))
    client.force_login(world["county"])
    response = client.post(
        f"/admin/alliances/budgetapplication/{app.pk}/step/health_confirm/", {"comment": "x"}, follow=True,
    )
    assert "只有" in response.content.decode()
    assert BudgetApplication.objects.get().status == ApplicationStatus.SUBMITTED


def test_applications_and_steps_are_scoped(world, client):
    from alliances.scope import restrict

    app = svc.submit_application(world["lead_user"], draft(world))
    for who, visible in (("lead_user", 1), ("member_user", 1), ("health", 1), ("county", 1), ("city", 1),
                         ("other_lead_user", 0), ("other_health", 0), ("other_county", 0)):
        assert restrict(BudgetApplication.objects.all(), world[who]).count() == visible, who
        assert restrict(BudgetWorkflowStep.objects.all(), world[who]).count() == visible, who
    client.force_login(world["other_lead_user"])
    assert client.get("/admin/alliances/budgetapplication/").status_code == 200
    assert client.get(f"/admin/alliances/budgetapplication/{app.pk}/change/").status_code == 404
    # City-wide reference rows open for every role through the same scoped admin.
    assert client.get("/admin/alliances/kpitarget/").status_code == 200


def test_alliance_form_cannot_set_the_budget_status(world, client):
    client.force_login(world["city"])
    page = client.get(f"/admin/alliances/alliance/{world['alliance'].pk}/change/").content.decode()
    assert 'name="budget_status"' not in page


def test_bad_input_is_refused_in_chinese(world):
    with pytest.raises(ValidationError, match="申请年度"):
        svc.create_application(world["lead_user"], world["alliance"], 20, **SEVEN, contact_name="张三", contact_phone="1")
    with pytest.raises(ValidationError, match="申请年度“二〇二六”无效"):
        svc.create_application(world["lead_user"], world["alliance"], "二〇二六", **SEVEN, contact_name="张", contact_phone="1")
    with pytest.raises(ValidationError, match="没有这些栏目"):
        svc.create_application(world["lead_user"], world["alliance"], 2026, status="已批准")
    with pytest.raises(ValidationError, match="联系人：此字段不能为空"):
        svc.create_application(world["lead_user"], world["alliance"], 2026, **SEVEN, contact_phone="1")
    assert not BudgetApplication.objects.exists()
