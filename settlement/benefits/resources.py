"""Spreadsheet resources `benefit_rules`, `referrals` and `relocations` (SPEC §4), through the one
import pipeline of settlement/imports. Headers are a public interface: exactly as SPEC §4 writes them."""
from decimal import Decimal

from alliances.models import InstitutionLevel
from contracts.models import InsuranceType
from settlement.imports import cells
from settlement.imports.resources import Bad, Column, Resource, _order, _person
from settlement.models import VisitType

from .models import BenefitRule, BenefitTable, CareType, Referral, ReferralDirection, Relocation

_ratio = cells.decimal(2, maximum=Decimal("100"), label="报销比例", max_digits=5)


def _prefetch_locked_years(rows, ctx):
    years = {row["year"] for row in rows}
    ctx.existing = {
        table.year: table.locked_reason() for table in BenefitTable.objects.filter(year__in=years)
    }


def _finish_benefit_rule(row, ctx):
    locked = ctx.existing.get(row["year"])
    if locked:
        raise Bad("年度", str(row["year"]), f"{locked}；如需调整请由市医保局建立新版本")
    if not (ctx.scope.sees_all or ctx.scope.role == "county"):
        raise Bad("年度", str(row["year"]), "待遇政策表由市医保局维护，县区可以提出草稿，医疗机构不能导入")
    care_type, visit_type = row["care_type"], row["visit_type"] or ""
    if care_type == CareType.INPATIENT and visit_type:
        raise Bad("门诊类型", visit_type, "住院规则不能填写门诊类型，请留空")
    return {
        "year": row["year"], "insurance_type": row["insurance_type"], "care_type": care_type, "level": row["level"],
        "visit_type": visit_type, "disease_prefix": (row["disease_prefix"] or "").upper(),
        "deductible": row["deductible"], "ratio": row["ratio"], "annual_limit": row["annual_limit"],
    }


BENEFIT_RULES = Resource(
    "benefit_rules", BenefitRule,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("险种", "insurance_type", cells.choice(InsuranceType.values), True, cache=True, example="居民"),
        Column("就医类型", "care_type", cells.choice(CareType.values), True, cache=True, example="门诊"),
        Column("机构等级", "level", cells.choice(InstitutionLevel.values), True, cache=True, example="基层"),
        Column("门诊类型", "visit_type", cells.choice(VisitType.values), cache=True),
        Column("病种编码", "disease_prefix", cells.code(30), cache=True),
        Column("起付标准", "deductible", cells.money, True, example="0.00"),
        Column("报销比例(%)", "ratio", _ratio, True, example="80"),
        Column("年度限额", "annual_limit", cells.money, example="300.00"),
    ],
    key=("year", "insurance_type", "care_type", "level", "visit_type", "disease_prefix"),
    finish=_finish_benefit_rule, prefetch=_prefetch_locked_years,
)


def _finish_referral(row, ctx):
    person = _person(ctx, row)
    sender = ctx.ref("institution", "转出机构编码", row["from_institution"])
    receiver = ctx.ref("institution", "转入机构编码", row["to_institution"])
    if sender[0] == receiver[0]:
        raise Bad("转入机构编码", row["to_institution"], "转入机构不能与转出机构相同")
    scope = ctx.scope
    if not scope.sees_all:
        mine = (
            (scope.is_hospital and {sender[0], receiver[0]} & scope.institution_ids)
            or (scope.is_regional and {sender[1], receiver[1], person[2]} & scope.region_ids)
        )
        if not mine:
            raise Bad("转出机构编码", row["from_institution"],
                      "不在您的数据范围内：医疗机构只能上传本机构转出或转入的转诊记录")
    return {
        "number": row["number"], "person_id": person[0], "from_institution_id": sender[0],
        "to_institution_id": receiver[0], "referred_on": row["referred_on"], "direction": row["direction"],
    }


REFERRALS = Resource(
    "referrals", Referral,
    [
        Column("转诊单号", "number", cells.code(40), True, example="ZZ2024000001"),
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number",
               example="330502197005170032"),
        Column("转出机构编码", "from_institution", cells.institution_code, True, lookup="institution", cache=True,
               export="from_institution__code", example="H33050200002"),
        Column("转入机构编码", "to_institution", cells.institution_code, True, lookup="institution", cache=True,
               export="to_institution__code", example="H33050200001"),
        Column("转诊日期", "referred_on", cells.date, True, cache=True, example="2024-03-01"),
        Column("转诊方向", "direction", cells.choice(ReferralDirection.values), True, cache=True, example="上转"),
    ],
    key=("number",), finish=_finish_referral,
)


def _finish_relocation(row, ctx):
    person = _person(ctx, row)
    if ctx.scope.is_hospital:
        raise Bad("身份证号", row["person"], "异地安置备案由医保局登记，医疗机构不能导入")
    ctx.require_person_county(person[2], "身份证号", row["person"])
    _order(row["filed_on"], row["ended_on"], "备案日期", "终止日期")
    return {
        "person_id": person[0], "filed_on": row["filed_on"], "destination": row["destination"],
        "ended_on": row["ended_on"],
    }


RELOCATIONS = Resource(
    "relocations", Relocation,
    [
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number",
               example="330502197005170032"),
        Column("备案日期", "filed_on", cells.date, True, cache=True, example="2024-02-01"),
        Column("安置地区划代码", "destination", cells.division_code, True, cache=True, example="460100"),
        Column("终止日期", "ended_on", cells.date, cache=True),
    ],
    key=("person_id", "filed_on"), finish=_finish_relocation,
)

BENEFIT_RESOURCES = (BENEFIT_RULES, REFERRALS, RELOCATIONS)
