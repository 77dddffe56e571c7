"""Builders for the benefit engine's tests: an FJ-conformant table, its policy, claims and cases."""
import datetime
import itertools
from decimal import Decimal as D

from alliances.models import InstitutionLevel, Region
from settlement.benefits.models import BenefitRule, BenefitTable, Referral, Relocation
from settlement.benefits.params import BenefitParams
from settlement.engine.models import PaymentPolicy
from settlement.engine.params import defaults_of
from settlement.models import ApprovalStatus, InpatientCase, OutpatientClaim
from tests import factories  # noqa: F401  (re-exported for the tests)

YEAR = 2025
_serials = itertools.count(1)

# (险种, 就医类型, 等级, 门诊类型, 病种前缀, 起付, 比例, 限额): 居民 primary 10 points above every level.
CONFORMANT = [
    ("居民", "门诊", "基层", "", "", "0", "80", "300"),
    ("居民", "门诊", "一级", "", "", "100", "70", None),
    ("居民", "门诊", "二级", "", "", "200", "60", None),
    ("居民", "门诊", "三级", "", "", "300", "50", None),
    ("居民", "门诊", "基层", "慢病门诊", "", "0", "65", "2000"),
    ("居民", "门诊", "基层", "", "A15", "0", "75", None),
    ("居民", "门诊", "基层", "", "A16", "0", "75", None),
    ("居民", "住院", "基层", "", "", "200", "90", None),
    ("居民", "住院", "一级", "", "", "400", "80", None),
    ("居民", "住院", "二级", "", "", "600", "70", None),
    ("居民", "住院", "三级", "", "", "1000", "60", None),
    ("职工", "门诊", "二级", "", "", "0", "75", None),
    ("职工", "住院", "二级", "", "", "800", "85", None),
]


def rules(rows=CONFORMANT, year=YEAR):
    for kind, care, level, visit_type, prefix, deductible, ratio, limit in rows:
        BenefitRule.objects.create(
            year=year, insurance_type=kind, care_type=care, level=level, visit_type=visit_type, disease_prefix=prefix,
            deductible=D(deductible), ratio=D(ratio), annual_limit=D(limit) if limit is not None else None,
        )


def policy(year=YEAR, **overrides):
    parameters = {**defaults_of(BenefitParams), **overrides}
    return PaymentPolicy.objects.create(
        scheme="benefits", year=year, name="福建默认", parameters=parameters, status=ApprovalStatus.APPROVED,
    )


def approved_table(rows=CONFORMANT, year=YEAR, **policy_overrides):
    """Rows, an approved policy and the approved table (entered through the approval machine)."""
    from settlement.benefits.services import approve_table

    rules(rows, year)
    policy(year, **policy_overrides)
    approve_table(year)
    return BenefitTable.objects.get(year=year)


def claim(person, inst, day, in_scope, fund="0.00", total=None, visit_type="普通门诊", disease=None, serial=None):
    total = D(total) if total is not None else D(in_scope)
    fund = D(fund)
    return OutpatientClaim.objects.create(
        institution=inst, serial=serial or f"MZ{next(_serials):06d}", person=person, visit_date=day,
        insurance_type=person.insurance_type, visit_type=visit_type, disease=disease, total_cost=total,
        fund_paid=fund, personal_paid=total - fund, in_scope_cost=D(in_scope) if total != D(in_scope) else None,
    )


def case(person, inst, admitted, discharged, in_scope, fund="0.00", diagnosis="I63.9", serial=None):
    return InpatientCase.objects.create(
        institution=inst, serial=serial or f"ZY{next(_serials):06d}", person=person, admission_date=admitted,
        discharge_date=discharged, principal_diagnosis=diagnosis, total_cost=D(in_scope), fund_paid=D(fund),
        personal_paid=D(in_scope) - D(fund),
    )


def referral(person, sender, receiver, day, direction):
    return Referral.objects.create(
        number=f"ZZ{next(_serials):06d}", person=person, from_institution=sender, to_institution=receiver,
        referred_on=day, direction=direction,
    )


def relocation(person, filed_on, destination, ended_on=None):
    return Relocation.objects.create(person=person, filed_on=filed_on, destination=destination, ended_on=ended_on)


def place():
    """Two counties of the city (湖州 330500), one out-of-city county (海口 460105), an institution per level."""
    wuxing = factories.region("330502", "吴兴区")
    nanxun = factories.region("330503", "南浔区")
    haikou_city = Region.objects.create(code="460100", name="海口市")
    haikou = Region.objects.create(code="460105", name="海口市秀英区", parent=haikou_city)
    levels = {
        level: factories.institution(wuxing, level) for level in
        (InstitutionLevel.GRASSROOTS, InstitutionLevel.PRIMARY, InstitutionLevel.SECONDARY, InstitutionLevel.TERTIARY)
    }
    return {
        "wuxing": wuxing, "nanxun": nanxun, "haikou": haikou, **levels,
        "nanxun_secondary": factories.institution(nanxun, InstitutionLevel.SECONDARY),
        "haikou_secondary": factories.institution(haikou, InstitutionLevel.SECONDARY),
        "resident": factories.person(wuxing),
    }


def day(month, dom):
    return datetime.date(YEAR, month, dom)
