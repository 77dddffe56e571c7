"""Benefit tables: each FJ clause refuses a table that breaks it and names it; a conformant one is
approved through the one guarded approval machine, locks its rows, and opens a next version."""
from decimal import Decimal as D

import pytest

from settlement.approval import LockedError, Refused
from settlement.benefits.models import BenefitRule, BenefitTable
from settlement.benefits.services import approve_table, revise_table, table_checks
from settlement.models import ApprovalStatus
from tests.settlement import benefit_builders as b
from tests.settlement.benefit_builders import CONFORMANT, YEAR

pytestmark = pytest.mark.django_db


def changed(match, **fields):
    """CONFORMANT with the rows whose (险种, 就医类型, 等级, 门诊类型, 前缀) start with `match` changed."""
    names = ("kind", "care", "level", "visit_type", "prefix", "deductible", "ratio", "limit")
    out = []
    for row in CONFORMANT:
        if row[:len(match)] == match:
            values = dict(zip(names, row)) | fields
            row = tuple(values[name] for name in names)
        out.append(row)
    return out


CLAUSES = [
    "居民门诊基层报销比例高于其他各级医疗机构不少于10个百分点", "居民住院基层报销比例高于其他各级医疗机构不少于10个百分点",
    "居民基层门诊不设起付标准", "居民基层慢病门诊报销比例不低于60%", "居民基层门诊肺结核报销比例不低于70%",
    "市内跨县就医报销比例降低不超过10个百分点", "同一险种各级住院年度限额一致",
]


def refusal_of(rows, **policy):
    b.rules(rows)
    b.policy(**policy)
    with pytest.raises(Refused) as raised:
        approve_table(YEAR)
    assert BenefitTable.objects.get(year=YEAR).status == ApprovalStatus.DRAFT
    return str(raised.value)


def test_conformant_table_is_approved_and_every_clause_reported_kept(make_user):
    city = make_user("city")
    b.rules()
    b.policy()
    assert all(result.passed for result in table_checks(YEAR))
    table = approve_table(YEAR, city)
    assert (table.status, table.approved_by) == (ApprovalStatus.APPROVED, city)


@pytest.mark.parametrize("rows, policy, clause", [
    # 三级 inpatient at 85% leaves 基层 90% only 5 points above it
    (changed(("居民", "住院", "三级"), ratio="85"), {}, "居民住院基层报销比例高于其他各级医疗机构不少于10个百分点"),
    (changed(("居民", "门诊", "一级", ""), ratio="75"), {}, "居民门诊基层报销比例高于其他各级医疗机构不少于10个百分点"),
    (changed(("居民", "门诊", "基层", ""), deductible="10"), {}, "居民基层门诊不设起付标准"),
    (changed(("居民", "门诊", "基层", "慢病门诊"), ratio="55"), {}, "居民基层慢病门诊报销比例不低于60%"),
    (changed(("居民", "门诊", "基层", "", "A15"), ratio="65"), {}, "居民基层门诊肺结核报销比例不低于70%"),
    (CONFORMANT, {"cross_county_points": "12"}, "市内跨县就医报销比例降低不超过10个百分点"),
])
def test_each_clause_refuses_a_table_breaking_it_and_names_it(rows, policy, clause):
    message = refusal_of(rows, **policy)
    assert message.startswith(f"{YEAR}年度待遇政策表（第1版）不符合分级诊疗政策，不能审批：")
    assert clause in message
    assert [other for other in CLAUSES if other in message] == [clause]  # only the broken one is named


def test_gap_names_the_levels_short_of_ten_points():
    message = refusal_of(changed(("居民", "住院", "三级"), ratio="85"))
    assert "基层为90.00%，与三级85.00%相差不足10个百分点" in message


def test_cross_county_ten_points_is_still_allowed():
    b.rules()
    b.policy(cross_county_points="10")
    assert approve_table(YEAR).status == ApprovalStatus.APPROVED


def test_only_the_city_bureau_approves(make_user):
    from tests import factories

    factories.region("330502", "吴兴区")
    b.rules()
    b.policy()
    with pytest.raises(Refused, match="只有市医保局可以审批"):
        approve_table(YEAR, make_user("county", "330502"))


def test_inpatient_limits_must_agree_across_levels():
    message = refusal_of(changed(("居民", "住院", "三级"), limit="50000"))
    assert "同一险种各级住院年度限额一致（住院限额按人按年计算）（居民：50000.00元、不限）" in message


def test_approved_rows_are_locked_until_the_next_version(make_user):
    city = make_user("city")
    b.approved_table()
    rule = BenefitRule.objects.get(insurance_type="居民", care_type="住院", level="三级")
    rule.ratio = D("55")
    with pytest.raises(LockedError):
        rule.save()
    with pytest.raises(LockedError):
        rule.delete()
    table = revise_table(YEAR, city)
    assert (table.version, table.status) == (2, ApprovalStatus.DRAFT)
    rule.save()
    assert BenefitRule.objects.get(pk=rule.pk).ratio == D("55")


def test_approve_command_approves_the_year_and_names_the_user(make_user):
    from io import StringIO

    from django.core.management import call_command

    city = make_user("city")
    b.rules()
    b.policy()
    out = StringIO()
    call_command("approve", "benefit_rules", "--year", str(YEAR), "--user", city.username, stdout=out)
    assert out.getvalue().strip() == f"已审批{YEAR}年度（全市）待遇政策表1项，审批人：{city.username}"
    assert BenefitTable.objects.get(year=YEAR).approved_by == city


def test_benefits_is_a_policy_but_not_a_settlement_scheme():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="未知的支付方案“benefits”"):
        call_command("settle", "benefits", "--year", str(YEAR), "--sync")
