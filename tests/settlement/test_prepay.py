"""Monthly prepayment doors (SPEC §4 payments): `manage.py prepay` and the admin page, one service."""
import datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from alliances.models import BudgetStatus
from settlement.models import Budget, Payment, PaymentSource, Scheme
from tests import factories
from tests.settlement.engine_data import policy

D = Decimal
YEAR = 2025


@pytest.fixture
def budget_alliance(county):
    policy("alliance_budget", YEAR)
    alliance = factories.alliance(county=county)
    alliance.budget_status = BudgetStatus.APPROVED
    alliance.budget_effective_from = datetime.date(YEAR, 3, 1)
    alliance.save()
    for kind, amount in (("职工", "5000000.00"), ("居民", "7000000.00")):
        Budget.objects.create(year=YEAR, scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code,
                              insurance_type=kind, amount=D(amount))
    return alliance


def prepay(*args):
    from io import StringIO

    out = StringIO()
    call_command("prepay", *args, stdout=out)
    return out.getvalue()


def rows(**filters):
    return list(Payment.objects.filter(**filters).order_by("unit_code", "month")
                .values_list("unit_code", "month", "amount", "source"))


# --- the command -------------------------------------------------------------------------------


def test_alliance_budget_month_twice_leaves_one_row(budget_alliance):
    code = budget_alliance.code
    first = prepay("alliance_budget", "--year", str(YEAR), "--month", "5")
    assert "新增1笔" in first
    second = prepay("alliance_budget", "--year", str(YEAR), "--month", "5")
    assert "新增0笔" in second and "未变1笔" in second
    # (5,000,000.00 + 7,000,000.00) / 12 × 95% = 950,000.00
    assert rows(scheme="alliance_budget") == [(code, 5, D("950000.00"), PaymentSource.PREPAYMENT)]


def test_alliance_budget_before_effective_month_pays_nothing(budget_alliance):
    out = prepay("alliance_budget", "--year", str(YEAR), "--month", "2")  # effective from March
    assert "无需预拨" in out
    assert rows() == []


def test_imported_payment_of_the_month_is_kept(budget_alliance):
    code = budget_alliance.code
    Payment.objects.create(year=YEAR, month=5, scheme="alliance_budget", unit_code=code, amount=D("900000.00"))
    out = prepay("alliance_budget", "--year", str(YEAR), "--month", "5")
    assert code in out and "未重复预拨" in out
    assert rows() == [(code, 5, D("900000.00"), PaymentSource.IMPORTED)]


def test_capitation_prepays_nothing(county):
    # Capitation pays each claim's 统筹支付 as it occurs (SPEC §6): no prepayment row ever.
    policy("capitation", YEAR)
    alliance = factories.alliance(county=county)
    person = factories.person(county=county)
    factories.contract(person, alliance.lead_hospital, datetime.date(2024, 1, 1), verified_on=datetime.date(2024, 1, 2))
    out = prepay("capitation", "--year", str(YEAR), "--month", "1")
    assert "无需预拨" in out
    assert Payment.objects.count() == 0


def test_family_doctor_advance_in_july_only(county):
    policy("family_doctor", YEAR)
    inst = factories.institution(county=county)
    verified = datetime.date(2024, 12, 1)
    for _ in range(2):
        factories.contract(factories.person(county=county), inst, datetime.date(2024, 12, 1), verified_on=verified)
    # Not verified: does not count (SPEC §3); ends before 30 June: not in force on the head-count day.
    factories.contract(factories.person(county=county), inst, datetime.date(2025, 1, 1))
    factories.contract(factories.person(county=county), inst, datetime.date(2025, 1, 1),
                       end=datetime.date(2025, 6, 29), verified_on=verified)
    assert "无需预拨" in prepay("family_doctor", "--year", str(YEAR), "--month", "6")
    prepay("family_doctor", "--year", str(YEAR), "--month", "7")
    prepay("family_doctor", "--year", str(YEAR), "--month", "7")
    # 50% × 100.00 (default package) × 2 persons in force on 30 June = 100.00
    assert rows() == [(inst.code, 7, D("100.00"), PaymentSource.PREPAYMENT)]


@pytest.mark.parametrize("args, reason", [
    (["nosuch", "--year", "2025", "--month", "1"], "未知的支付方案"),
    (["alliance_budget", "--year", "2025", "--month", "13"], "月份“13”无效"),
    (["alliance_budget", "--year", "20x5", "--month", "1"], "年度“20x5”无效"),
    (["alliance_budget", "--year", "2025", "--month", "1", "--region", "999999"], "区划代码“999999”不存在"),
    (["special_outpatient", "--year", "2025", "--month", "1"], "未找到2025年度"),
])
def test_bad_requests_exit_with_one_line_and_write_nothing(budget_alliance, args, reason):
    with pytest.raises(CommandError) as exc:
        call_command("prepay", *args)
    message = str(exc.value)
    assert reason in message and "\n" not in message
    assert Payment.objects.count() == 0


def test_unapproved_policy_is_refused(county):
    policy("alliance_budget", YEAR, approved=False)
    with pytest.raises(CommandError, match="尚未审批"):
        call_command("prepay", "alliance_budget", "--year", str(YEAR), "--month", "5")


# --- the admin page ----------------------------------------------------------------------------

URL = "admin:settlement_settlementrun_prepay"


def post(client, user, **data):
    client.force_login(user)
    return client.post(reverse(URL), {"scheme": "alliance_budget", "year": YEAR, "month": 5, **data}, follow=True)


def test_run_list_has_the_button_for_bureau_staff_only(client, make_user, county):
    changelist = reverse("admin:settlement_settlementrun_changelist")
    for user in (make_user("city"), make_user("county", county.code)):
        client.force_login(user)
        page = client.get(changelist).content.decode()
        assert reverse(URL) in page and "月度预拨" in page
    client.force_login(make_user("auditor"))
    response = client.get(changelist)
    assert response.status_code == 200 and reverse(URL) not in response.content.decode()


@pytest.mark.parametrize("role, scope", [("hospital", "lead"), ("health", "330502"), ("auditor", None)])
def test_other_roles_are_refused(client, make_user, budget_alliance, role, scope):
    user = make_user(role, budget_alliance.lead_hospital.code if scope == "lead" else scope)
    client.force_login(user)
    assert client.get(reverse(URL)).status_code == 403
    response = client.post(reverse(URL), {"scheme": "alliance_budget", "year": YEAR, "month": 5})
    assert response.status_code == 403
    assert Payment.objects.count() == 0


def test_city_runs_it_twice_one_row(client, make_user, budget_alliance):
    user = make_user("city")
    for _ in range(2):
        response = post(client, user)
        assert response.status_code == 200
    text = response.content.decode()
    assert "未变1笔" in text
    assert rows() == [(budget_alliance.code, 5, D("950000.00"), PaymentSource.PREPAYMENT)]


def test_county_only_its_own_county(client, make_user, budget_alliance, other_county):
    user = make_user("county", budget_alliance.county.code)
    client.force_login(user)
    form = client.get(reverse(URL)).context["form"]
    assert list(form.fields["region"].queryset.values_list("code", flat=True)) == [budget_alliance.county.code]
    # Another county is not even a choice; city-wide (empty) is required away for a county.
    for region in (other_county.pk, ""):
        response = client.post(reverse(URL), {"scheme": "alliance_budget", "year": YEAR, "month": 5, "region": region})
        assert response.status_code == 200 and response.context["form"].errors
    assert Payment.objects.count() == 0
    post(client, user, region=budget_alliance.county.pk)
    assert rows() == [(budget_alliance.code, 5, D("950000.00"), PaymentSource.PREPAYMENT)]


def test_service_error_is_shown_and_nothing_written(client, make_user, county):
    response = post(client, make_user("city"), scheme="special_outpatient")
    assert "未找到2025年度" in response.content.decode()
    assert Payment.objects.count() == 0
