"""One declarative spec per spreadsheet resource of SPEC §4: headers, parsers, business key,
how codes resolve to rows, the row rules that need several cells, and how the row lands.

Headers are a public interface: keep them exactly as SPEC §4 writes them.
"""
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from alliances.models import (
    Alliance, Institution, InstitutionKind, InstitutionLevel, Membership, Region, default_alliance_problem,
)
from contracts.models import (
    Contract, Disease, DiseaseCategory, DiseaseRegistration, InsuranceType, InsuredPerson, ServicePackage,
)
from settlement.models import (
    AgeBand, ApprovalStatus, Assessment, BedDayCategory, DischargeMode, BedDayQuota, Budget, CapitationStandard, DiseaseStandard,
    DrgCoefficient, DrgGroup, FamilyDoctorService, InpatientCase, OutpatientClaim, Payment, PaymentSource, Scheme,
    SpecialDesignation, SpecialStandard, VisitType,
)

from . import cells
from .errors import CellError
from .lookups import Lookup, PackageLookup, UnitLookup

CENT = Decimal("0.01")


class Bad(Exception):
    """A row-level problem found after the cells parsed: names the column it is about."""

    def __init__(self, column, value, reason):
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


@dataclass(frozen=True)
class Column:
    header: str
    name: str
    parse: Callable
    required: bool = False
    lookup: str | None = None
    cache: bool = False  # memoise the parse: few distinct values (dates, vocabularies, codes)
    export: str | None = None  # ORM path for export; defaults to `name`
    example: object = ""


def lookups():
    """Fresh lookups per import (their caches belong to one file)."""
    return {
        "region": Lookup(Region, "code"),
        "institution": Lookup(Institution, "code", ("pk", "county_id", "level")),
        "person": Lookup(InsuredPerson, "id_number", ("pk", "insurance_type", "county_id")),
        "disease": Lookup(Disease, "code", ("pk", "category")),
        "alliance": Lookup(Alliance, "code", ("pk", "county_id")),
        "package": PackageLookup(ServicePackage, "code"),
        "unit": UnitLookup(),
    }


@dataclass
class Resource:
    name: str
    model: type
    columns: list
    key: tuple
    finish: Callable  # (row, ctx) -> {db column: value}
    insert_only: frozenset = frozenset()  # written when the row is created, never updated
    keep_if_null: frozenset = frozenset()  # a blank cell keeps what is stored
    on_change: dict = field(default_factory=dict)  # columns reset when a stored row changes
    prefetch: Callable | None = None  # (rows, ctx) -> None: chunk-wide DB reads for invariants
    stage_extra: dict = field(default_factory=dict)  # staging-only columns: name -> SQL type
    pre_land: Callable | None = None  # (cursor, stage, ctx) on PostgreSQL before the upsert
    orm_prepare: Callable | None = None  # (values, ctx) on the ORM path before saving
    orm_only: bool = False  # small self-referencing master data lands row by row

    @property
    def title(self):
        return self.model._meta.verbose_name

    @property
    def headers(self):
        return [column.header for column in self.columns]

    @property
    def required_headers(self):
        return [column.header for column in self.columns if column.required]

    @property
    def permission(self):
        opts = self.model._meta
        return f"{opts.app_label}.add_{opts.model_name}"


# --- shared row rules -------------------------------------------------------------------------


def _amounts(row, total="total_cost", fund="fund_paid", personal="personal_paid"):
    if abs(row[fund] + row[personal] - row[total]) > CENT:
        raise Bad("总费用", str(row[total]), f"统筹支付（{row[fund]}）与个人负担（{row[personal]}）之和应等于总费用（允许误差0.01元）")


def _order(start, end, start_header, end_header):
    if end is not None and start is not None and end < start:
        raise Bad(end_header, end.isoformat(), f"{end_header}不能早于{start_header}")


def _overlaps(a_start, a_end, b_start, b_end):
    return (a_end is None or b_start <= a_end) and (b_end is None or a_start <= b_end)


def _period(start, end):
    return f"{start.isoformat()}至{end.isoformat()}" if end else f"{start.isoformat()}起至今"


def _blank(value):
    return "" if value is None else value


# --- master data ------------------------------------------------------------------------------


def _finish_region(row, ctx):
    parent = row["parent"]
    if parent == row["code"]:
        raise Bad("上级区划代码", parent, "上级区划不能是本区划")
    if parent and ctx.lookup("region").get(parent) is None and parent not in ctx.file_codes:
        raise Bad("上级区划代码", parent, f"上级区划代码“{parent}”不存在，请先导入上级区划（或在本文件中写在前面）")
    ctx.file_codes.add(row["code"])
    return {"code": row["code"], "name": row["name"], "_parent_code": parent}


def _orm_region(values, ctx):
    code = values.pop("_parent_code")
    values["parent_id"] = Region.objects.get(code=code).pk if code else None


REGIONS = Resource(
    "regions", Region,
    [
        Column("区划代码", "code", cells.division_code, True, example="330502"),
        Column("名称", "name", cells.text(50), True, example="吴兴区"),
        Column("上级区划代码", "parent", cells.division_code, export="parent__code", example="330500"),
    ],
    key=("code",), finish=_finish_region, orm_prepare=_orm_region, orm_only=True,
)


DISEASES = Resource(
    "diseases", Disease,
    [
        Column("病种编码", "code", cells.code(30), True, example="I10"),
        Column("病种名称", "name", cells.text(100), True, example="高血压"),
        Column("病种类别", "category", cells.choice(DiseaseCategory.values), True, cache=True, example="慢性病"),
    ],
    key=("code",), finish=lambda row, ctx: {"code": row["code"], "name": row["name"], "category": row["category"]},
)


def _finish_institution(row, ctx):
    county = ctx.ref("region", "区划代码", row["county"])
    ctx.require_county(county[0], "区划代码", row["county"])
    return {
        "code": row["code"], "name": row["name"], "county_id": county[0], "level": row["level"],
        "kind": row["kind"] or InstitutionKind.GENERAL,
    }


INSTITUTIONS = Resource(
    "institutions", Institution,
    [
        Column("机构编码", "code", cells.institution_code, True, example="H33050200001"),
        Column("机构名称", "name", cells.text(100), True, example="吴兴区人民医院"),
        Column("区划代码", "county", cells.division_code, True, lookup="region", cache=True, export="county__code", example="330502"),
        Column("机构等级", "level", cells.choice(InstitutionLevel.values), True, cache=True, example="二级"),
        Column("机构类别", "kind", cells.choice(InstitutionKind.values), cache=True, example="综合"),
    ],
    key=("code",), finish=_finish_institution,
)


def _prefetch_alliances(rows, ctx):
    """The alliances of the chunk's counties as stored, once per county and file: (name, default) by code.

    The file's own rows then update this picture in file order, so that the default-alliance rule
    holds after every row exactly as it does after a form's save.
    """
    if not hasattr(ctx, "county_alliances"):
        ctx.county_alliances = {}
    known = ctx.county_alliances
    ids = {found[0] for found in (ctx.lookup("region").get(r["county"]) for r in rows) if found} - set(known)
    for county_id in ids:
        known[county_id] = {}
    for county_id, code, name, flag in Alliance.objects.filter(county_id__in=ids).values_list(
        "county_id", "code", "name", "is_default",
    ):
        known[county_id][code] = (name, flag)


def _finish_alliance(row, ctx):
    county = ctx.ref("region", "区划代码", row["county"])
    ctx.require_county(county[0], "区划代码", row["county"])
    lead = ctx.ref("institution", "牵头医院编码", row["lead"])
    county_alliances = ctx.county_alliances[county[0]]
    stored = county_alliances.get(row["code"])
    # A blank or missing 默认医共体 keeps what is stored (a new alliance is not the default).
    is_default = row["is_default"] if row["is_default"] is not None else bool(stored and stored[1])
    others = [(name, code, flag) for code, (name, flag) in county_alliances.items() if code != row["code"]]
    problem = default_alliance_problem(is_default, others)
    if problem:
        raise Bad("默认医共体", "是" if is_default else "否", problem)
    county_alliances[row["code"]] = (row["name"], is_default)
    return {"code": row["code"], "name": row["name"], "county_id": county[0], "lead_hospital_id": lead[0],
            "is_default": is_default}


ALLIANCES = Resource(
    "alliances", Alliance,
    [
        Column("医共体编码", "code", cells.code(30), True, example="YGT0001"),
        Column("医共体名称", "name", cells.text(100), True, example="吴兴区医共体"),
        Column("区划代码", "county", cells.division_code, True, lookup="region", cache=True, export="county__code", example="330502"),
        Column("牵头医院编码", "lead", cells.institution_code, True, lookup="institution", cache=True,
               export="lead_hospital__code", example="H33050200001"),
        # Optional (SPEC §6.4 Coverage): required to be 是 on one alliance where a county has several.
        Column("默认医共体", "is_default", cells.yes_no, cache=True, export="is_default", example="否"),
    ],
    key=("code",), finish=_finish_alliance, prefetch=_prefetch_alliances,
)


def _prefetch_memberships(rows, ctx):
    ids = {inst[0] for inst in (ctx.lookup("institution").get(r["institution"]) for r in rows) if inst}
    ctx.existing = {}
    for inst_id, alliance_id, joined, left, alliance_name in Membership.objects.filter(
        institution_id__in=ids
    ).values_list("institution_id", "alliance_id", "joined_on", "left_on", "alliance__name"):
        ctx.existing.setdefault(inst_id, []).append((alliance_id, joined, left, alliance_name))


def _finish_membership(row, ctx):
    alliance = ctx.ref("alliance", "医共体编码", row["alliance"])
    inst = ctx.ref("institution", "机构编码", row["institution"])
    ctx.require_county(alliance[1], "医共体编码", row["alliance"])
    joined, left = row["joined_on"], row["left_on"]
    _order(joined, left, "加入日期", "退出日期")
    for other_alliance, o_joined, o_left, name in ctx.existing.get(inst[0], ()):
        if (other_alliance, o_joined) == (alliance[0], joined):
            continue  # the same membership: this row updates it
        if _overlaps(joined, left, o_joined, o_left):
            raise Bad("加入日期", joined.isoformat(),
                      f"该机构在{_period(o_joined, o_left)}已属于{name}，同一机构同一时间只能属于一个医共体")
    for other_row, o_joined, o_left in ctx.in_file.get(inst[0], ()):
        if _overlaps(joined, left, o_joined, o_left):
            raise Bad("加入日期", joined.isoformat(), f"与本文件第{other_row}行的成员期间重叠，同一机构同一时间只能属于一个医共体")
    ctx.in_file.setdefault(inst[0], []).append((ctx.row_number, joined, left))
    return {"alliance_id": alliance[0], "institution_id": inst[0], "joined_on": joined, "left_on": left}


MEMBERSHIPS = Resource(
    "memberships", Membership,
    [
        Column("医共体编码", "alliance", cells.code(30), True, lookup="alliance", cache=True, export="alliance__code", example="YGT0001"),
        Column("机构编码", "institution", cells.institution_code, True, lookup="institution", cache=True,
               export="institution__code", example="H33050200001"),
        Column("加入日期", "joined_on", cells.date, True, cache=True, example="2024-01-01"),
        Column("退出日期", "left_on", cells.date, cache=True),
    ],
    key=("alliance_id", "institution_id", "joined_on"), finish=_finish_membership, prefetch=_prefetch_memberships,
)


def _checked_id(number, header="身份证号"):
    try:
        return cells.check_resident_id(number)
    except CellError as exc:
        raise Bad(header, number, exc.reason) from None


def _finish_person(row, ctx):
    parsed = _checked_id(row["id_number"])
    county = ctx.ref("region", "参保区划代码", row["county"])
    ctx.require_person_county(county[0], "参保区划代码", row["county"])
    return {
        "id_number": parsed.number, "name": row["name"], "birth_date": parsed.birth_date, "sex": parsed.sex,
        "insurance_type": row["insurance_type"], "county_id": county[0],
    }


PERSONS = Resource(
    "persons", InsuredPerson,
    [
        Column("身份证号", "id_number", cells.resident_id, True, lookup="person", example="330502197005170032"),
        Column("姓名", "name", cells.text(50), True, example="张三"),
        Column("险种", "insurance_type", cells.choice(InsuranceType.values), True, cache=True, example="居民"),
        Column("参保区划代码", "county", cells.division_code, True, lookup="region", cache=True, export="county__code", example="330502"),
    ],
    key=("id_number",), finish=_finish_person,
)


def _person(ctx, row, header="身份证号"):
    number = row["person"]
    person = ctx.lookup("person").get(number)
    if person is None:
        _checked_id(number, header)  # a wrong check digit is the better reason
        raise Bad(header, number, "该身份证号的参保人不存在，请先导入参保人")
    return person


def _prefetch_contracts(rows, ctx):
    ids = {p[0] for p in (ctx.lookup("person").get(r["person"]) for r in rows) if p}
    ctx.existing = {}
    for person_id, start, end, inst_name in Contract.objects.filter(person_id__in=ids).values_list(
        "person_id", "start", "end", "institution__name"
    ):
        ctx.existing.setdefault(person_id, []).append((start, end, inst_name))


def _finish_contract(row, ctx):
    person = _person(ctx, row)
    inst = ctx.ref("institution", "机构编码", row["institution"])
    ctx.require_institution(inst, "机构编码", row["institution"])
    start, end, verified = row["start"], row["end"], row["verified_on"]
    _order(start, end, "签约日期", "解约日期")
    if verified is not None:
        if not ctx.may_verify:
            raise Bad("核实日期", verified.isoformat(), "核实日期只能由卫健委或医保局工作人员填写，医疗机构上传时请留空")
        if verified < start:
            raise Bad("核实日期", verified.isoformat(), "核实日期不能早于签约日期")
    package = ctx.ref("package", "服务包", row["package"]) if row["package"] else None
    for o_start, o_end, inst_name in ctx.existing.get(person[0], ()):
        if o_start == start:
            continue  # the same contract: this row updates it
        if _overlaps(start, end, o_start, o_end):
            raise Bad("签约日期", start.isoformat(),
                      f"该参保人在{_period(o_start, o_end)}已与{inst_name}签约，同一时间只能有一份有效签约")
    for other_row, o_start, o_end in ctx.in_file.get(person[0], ()):
        if _overlaps(start, end, o_start, o_end):
            raise Bad("签约日期", start.isoformat(), f"与本文件第{other_row}行的签约期间重叠，同一时间只能有一份有效签约")
    ctx.in_file.setdefault(person[0], []).append((ctx.row_number, start, end))
    return {
        "person_id": person[0], "institution_id": inst[0], "team_id": None, "package_id": package[0] if package else None,
        "start": start, "end": end, "verified_on": verified, "verified_by_id": ctx.user_id if verified else None,
        "_team_name": row["team"],
    }


def _land_teams(cursor, stage, ctx):
    from contracts.models import FamilyDoctorTeam

    from .landing import insert_with_history

    insert_with_history(
        cursor, FamilyDoctorTeam,
        f"SELECT DISTINCT institution_id, _team_name, '' FROM {stage} s WHERE NOT EXISTS ("
        f"SELECT 1 FROM {FamilyDoctorTeam._meta.db_table} t WHERE t.institution_id = s.institution_id AND t.name = s._team_name)",
        ("institution_id", "name", "lead_doctor"), ctx,
    )
    cursor.execute(
        f"UPDATE {stage} s SET team_id = t.id FROM {FamilyDoctorTeam._meta.db_table} t "
        "WHERE t.institution_id = s.institution_id AND t.name = s._team_name"
    )


def _orm_contract(values, ctx):
    from contracts.models import FamilyDoctorTeam

    name = values.pop("_team_name")
    team = FamilyDoctorTeam.objects.filter(institution_id=values["institution_id"], name=name).first()
    if team is None:
        team = FamilyDoctorTeam(institution_id=values["institution_id"], name=name)
        team._history_user = ctx.user
        team.save()
    values["team_id"] = team.pk


CONTRACTS = Resource(
    "contracts", Contract,
    [
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number", example="330502197005170032"),
        Column("机构编码", "institution", cells.institution_code, True, lookup="institution", cache=True,
               export="institution__code", example="H33050200001"),
        Column("团队名称", "team", cells.text(100), True, cache=True, export="team__name", example="第一家庭医生团队"),
        Column("签约日期", "start", cells.date, True, cache=True, example="2024-01-01"),
        Column("解约日期", "end", cells.date, cache=True),
        Column("服务包", "package", cells.text(100), lookup="package", cache=True, export="package__code"),
        Column("核实日期", "verified_on", cells.date, cache=True),
    ],
    key=("person_id", "start"), finish=_finish_contract, prefetch=_prefetch_contracts,
    keep_if_null=frozenset({"verified_on", "verified_by_id"}), stage_extra={"_team_name": "varchar(100)"},
    pre_land=_land_teams, orm_prepare=_orm_contract,
)


def _finish_registration(row, ctx):
    person = _person(ctx, row)
    ctx.require_person_county(person[2], "身份证号", row["person"])
    disease = ctx.ref("disease", "病种编码", row["disease"])
    _order(row["filed_on"], row["ended_on"], "备案日期", "终止日期")
    return {
        "person_id": person[0], "disease_id": disease[0], "filed_on": row["filed_on"], "ended_on": row["ended_on"],
        "approving_institution_id": ctx.own_institution_id,
    }


REGISTRATIONS = Resource(
    "registrations", DiseaseRegistration,
    [
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number", example="330502197005170032"),
        Column("病种编码", "disease", cells.code(30), True, lookup="disease", cache=True, export="disease__code", example="I10"),
        Column("备案日期", "filed_on", cells.date, True, cache=True, example="2024-01-15"),
        Column("终止日期", "ended_on", cells.date, cache=True),
    ],
    key=("person_id", "disease_id", "filed_on"), finish=_finish_registration,
    insert_only=frozenset({"approving_institution_id"}),
)


# --- transaction data --------------------------------------------------------------------------


def _claim_common(row, ctx):
    person = _person(ctx, row)
    inst = ctx.ref("institution", "机构编码", row["institution"])
    ctx.require_institution(inst, "机构编码", row["institution"])
    _amounts(row)
    return person, inst


def _finish_outpatient(row, ctx):
    person, inst = _claim_common(row, ctx)
    disease = ctx.ref("disease", "病种编码", row["disease"]) if row["disease"] else None
    return {
        "institution_id": inst[0], "serial": row["serial"], "person_id": person[0], "visit_date": row["visit_date"],
        "insurance_type": person[1], "visit_type": row["visit_type"], "disease_id": disease[0] if disease else None,
        "total_cost": row["total_cost"], "fund_paid": row["fund_paid"], "personal_paid": row["personal_paid"],
        "referral": bool(row["referral"]), "in_scope_cost": _in_scope(row),
    }


def _in_scope(row):
    """政策范围内费用 (SPEC §6.8), optional: a file without it keeps what is stored."""
    value = row["in_scope_cost"]
    if value is not None and value > row["total_cost"]:
        raise Bad("政策范围内费用", str(value), f"政策范围内费用（{value}）不能大于总费用（{row['total_cost']}）")
    return value


_in_scope_column = Column("政策范围内费用", "in_scope_cost", cells.money, example="100.00")
_OPTIONAL_KEPT = frozenset({"in_scope_cost"})


OUTPATIENT_CLAIMS = Resource(
    "outpatient_claims", OutpatientClaim,
    [
        Column("结算流水号", "serial", cells.code(40), True, example="MZ202401010001"),
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number", example="330502197005170032"),
        Column("机构编码", "institution", cells.institution_code, True, lookup="institution", cache=True,
               export="institution__code", example="H33050200001"),
        Column("就诊日期", "visit_date", cells.date, True, cache=True, example="2024-01-01"),
        Column("门诊类型", "visit_type", cells.choice(VisitType.values), True, cache=True, example="普通门诊"),
        Column("病种编码", "disease", cells.code(30), lookup="disease", cache=True, export="disease__code"),
        Column("总费用", "total_cost", cells.money, True, example="120.50"),
        Column("统筹支付", "fund_paid", cells.money, True, example="80.00"),
        Column("个人负担", "personal_paid", cells.money, True, example="40.50"),
        Column("转诊", "referral", cells.yes_no, cache=True, example="否"),
        _in_scope_column,
    ],
    key=("institution_id", "serial"), finish=_finish_outpatient, keep_if_null=_OPTIONAL_KEPT,
)


def _discharge_mode(value):
    """离院方式 by code (1 … 9) or by its name (医嘱离院, 死亡, …)."""
    textual = str(value).strip()
    if textual.endswith(".0"):  # a number cell
        textual = textual[:-2]
    by_label = {label: code for code, label in DischargeMode.choices}
    if textual in DischargeMode.values:
        return textual
    if textual in by_label:
        return by_label[textual]
    raise CellError("离院方式应为以下代码之一：" + "、".join(f"{code} {label}" for code, label in DischargeMode.choices))


def _finish_inpatient(row, ctx):
    person, inst = _claim_common(row, ctx)
    _order(row["admission_date"], row["discharge_date"], "入院日期", "出院日期")
    return {
        "institution_id": inst[0], "serial": row["serial"], "person_id": person[0],
        "admission_date": row["admission_date"], "discharge_date": row["discharge_date"],
        "principal_diagnosis": row["principal_diagnosis"], "main_operation": _blank(row["main_operation"]),
        "drg_code": _blank(row["drg_code"]), "total_cost": row["total_cost"], "fund_paid": row["fund_paid"],
        "personal_paid": row["personal_paid"], "incomplete_stay": bool(row["incomplete_stay"]),
        "new_technology": bool(row["new_technology"]), "bed_day_category": _blank(row["bed_day_category"]),
        "in_scope_cost": _in_scope(row), "discharge_mode": row["discharge_mode"],
    }


INPATIENT_CASES = Resource(
    "inpatient_cases", InpatientCase,
    [
        Column("病案号", "serial", cells.code(40), True, example="ZY2024000001"),
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number", example="330502197005170032"),
        Column("机构编码", "institution", cells.institution_code, True, lookup="institution", cache=True,
               export="institution__code", example="H33050200001"),
        Column("入院日期", "admission_date", cells.date, True, cache=True, example="2024-01-01"),
        Column("出院日期", "discharge_date", cells.date, True, cache=True, example="2024-01-08"),
        Column("主诊断", "principal_diagnosis", cells.code(30), True, cache=True, example="I63.9"),
        Column("主手术", "main_operation", cells.code(30), cache=True),
        Column("DRG编码", "drg_code", cells.code(20), cache=True, example="BR23"),
        Column("总费用", "total_cost", cells.money, True, example="15000.00"),
        Column("统筹支付", "fund_paid", cells.money, True, example="11000.00"),
        Column("个人负担", "personal_paid", cells.money, True, example="4000.00"),
        Column("不完整住院", "incomplete_stay", cells.yes_no, cache=True, example="否"),
        Column("新技术", "new_technology", cells.yes_no, cache=True, example="否"),
        Column("床日类别", "bed_day_category", cells.choice(BedDayCategory.values), cache=True),
        _in_scope_column,
        Column("离院方式", "discharge_mode", _discharge_mode, cache=True, example="1"),
    ],
    key=("institution_id", "serial"), finish=_finish_inpatient,
    keep_if_null=_OPTIONAL_KEPT | {"discharge_mode"},
)


def _finish_fd_service(row, ctx):
    person = _person(ctx, row)
    inst = ctx.ref("institution", "机构编码", row["institution"])
    ctx.require_institution(inst, "机构编码", row["institution"])
    return {"person_id": person[0], "institution_id": inst[0], "service_date": row["service_date"], "item": row["item"]}


FD_SERVICES = Resource(
    "fd_services", FamilyDoctorService,
    [
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number", example="330502197005170032"),
        Column("机构编码", "institution", cells.institution_code, True, lookup="institution", cache=True,
               export="institution__code", example="H33050200001"),
        Column("服务日期", "service_date", cells.date, True, cache=True, example="2024-03-01"),
        Column("服务项目", "item", cells.text(100), True, cache=True, example="健康评估"),
    ],
    key=("person_id", "institution_id", "service_date", "item"), finish=_finish_fd_service,
)


def _finish_designation(row, ctx):
    person = _person(ctx, row)
    disease = ctx.ref("disease", "病种编码", row["disease"])
    if disease[1] != DiseaseCategory.SPECIAL_CLASS2:
        raise Bad("病种编码", row["disease"], f"该病种的类别是{disease[1]}，二类门特定点只能选择二类门特病种")
    inst = ctx.ref("institution", "治疗机构编码", row["institution"])
    ctx.require_institution(inst, "治疗机构编码", row["institution"])
    signing = ctx.ref("institution", "签约机构编码", row["signing"]) if row["signing"] else None
    return {
        "year": row["year"], "person_id": person[0], "disease_id": disease[0], "institution_id": inst[0],
        "signing_institution_id": signing[0] if signing else None,
    }


SPECIAL_DESIGNATIONS = Resource(
    "special_designations", SpecialDesignation,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("身份证号", "person", cells.resident_id, True, lookup="person", export="person__id_number", example="330502197005170032"),
        Column("病种编码", "disease", cells.code(30), True, lookup="disease", cache=True, export="disease__code", example="M05"),
        Column("治疗机构编码", "institution", cells.institution_code, True, lookup="institution", cache=True,
               export="institution__code", example="H33050200001"),
        Column("签约机构编码", "signing", cells.institution_code, lookup="institution", cache=True,
               export="signing_institution__code"),
    ],
    key=("year", "person_id", "disease_id"), finish=_finish_designation,
)


# --- standards ---------------------------------------------------------------------------------

_REAPPROVE = {"status": ApprovalStatus.DRAFT, "approved_by_id": None, "approved_at": None}
APPROVED_STANDARD = "该标准已审批（{amount}元），已审批的标准不能通过导入修改"


def _prefetch_approved(model, key):
    """Approved standards of the file's years, by business key: an upload may repeat them, never change them."""

    def prefetch(rows, ctx):
        years = {row["year"] for row in rows}
        ctx.existing = {
            tuple(values[:-1]): values[-1]
            for values in model.objects.filter(year__in=years, status=ApprovalStatus.APPROVED).values_list(*key, "amount")
        }

    return prefetch


def _unless_approved(key, values, ctx):
    approved = ctx.existing.get(tuple(values[name] for name in key))
    if approved is not None and approved != values["amount"]:
        raise Bad("人头标准(元/人·年)", str(values["amount"]), APPROVED_STANDARD.format(amount=approved))
    return values


def _finish_capitation(row, ctx):
    disease = ctx.ref("disease", "病种编码", row["disease"]) if row["disease"] else None
    return _unless_approved(_CAPITATION_KEY, {
        "year": row["year"], "insurance_type": row["insurance_type"], "age_band": row["age_band"],
        "disease_id": disease[0] if disease else None, "amount": row["amount"],
    }, ctx)


_CAPITATION_KEY = ("year", "insurance_type", "age_band", "disease_id")


CAPITATION_STANDARDS = Resource(
    "capitation_standards", CapitationStandard,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("险种", "insurance_type", cells.choice(InsuranceType.values), True, cache=True, example="居民"),
        Column("年龄段", "age_band", cells.choice(AgeBand.values), True, cache=True, example="60周岁及以下"),
        Column("病种编码", "disease", cells.code(30), lookup="disease", cache=True, export="disease__code"),
        Column("人头标准(元/人·年)", "amount", cells.money, True, example="360.00"),
    ],
    key=_CAPITATION_KEY, finish=_finish_capitation, on_change=_REAPPROVE,
    prefetch=_prefetch_approved(CapitationStandard, _CAPITATION_KEY),
)


def _finish_special_standard(row, ctx):
    disease = ctx.ref("disease", "病种编码", row["disease"])
    return _unless_approved(("year", "disease_id"), {"year": row["year"], "disease_id": disease[0], "amount": row["amount"]}, ctx)


SPECIAL_STANDARDS = Resource(
    "special_standards", SpecialStandard,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("病种编码", "disease", cells.code(30), True, lookup="disease", cache=True, export="disease__code", example="M05"),
        Column("人头标准(元/人·年)", "amount", cells.money, True, example="5000.00"),
    ],
    key=("year", "disease_id"), finish=_finish_special_standard, on_change=_REAPPROVE,
    prefetch=_prefetch_approved(SpecialStandard, ("year", "disease_id")),
)

_points = cells.decimal(4, label="点数", max_digits=12)


def _prefetch_drg_locks(rows, ctx):
    ctx.existing = {year: DrgGroup(year=year).locked_reason() for year in {row["year"] for row in rows}}


def _finish_drg_group(row, ctx):
    locked = ctx.existing.get(row["year"])
    if locked:
        raise Bad("年度", str(row["year"]), locked)
    return {
        "year": row["year"], "code": row["code"], "name": row["name"], "base_points": row["base_points"],
        "average_cost": row["average_cost"], "bed_day_points": row["bed_day_points"],
        "same_price": bool(row["same_price"]), "tcm_support": bool(row["tcm_support"]),
    }

DRG_GROUPS = Resource(
    "drg_groups", DrgGroup,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("DRG编码", "code", cells.code(20), True, example="BR23"),
        Column("名称", "name", cells.text(200), True, example="脑缺血性疾患，伴合并症或并发症"),
        Column("基准点数", "base_points", _points, True, example="120.5000"),
        Column("病组均次费用", "average_cost", cells.money, True, example="12050.00"),
        Column("床日点数", "bed_day_points", _points),
        Column("同病同价", "same_price", cells.yes_no, cache=True, example="否"),
        Column("中医扶持", "tcm_support", cells.yes_no, cache=True, example="否"),
    ],
    key=("year", "code"), finish=_finish_drg_group, prefetch=_prefetch_drg_locks,
)


def _finish_coefficient(row, ctx):
    inst = ctx.ref("institution", "机构编码", row["institution"])
    ctx.require_institution(inst, "机构编码", row["institution"])
    return {"year": row["year"], "institution_id": inst[0], "coefficient": row["coefficient"]}


DRG_COEFFICIENTS = Resource(
    "drg_coefficients", DrgCoefficient,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("机构编码", "institution", cells.institution_code, True, lookup="institution", cache=True,
               export="institution__code", example="H33050200001"),
        Column("差异系数", "coefficient", cells.decimal(4, label="差异系数", max_digits=8), True, example="1.0500"),
    ],
    key=("year", "institution_id"), finish=_finish_coefficient,
)

BED_DAY_QUOTAS = Resource(
    "bed_day_quotas", BedDayQuota,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("机构等级", "level", cells.choice(InstitutionLevel.values), True, cache=True, example="二级"),
        Column("床日类别", "category", cells.choice(BedDayCategory.values), True, cache=True, example="精神"),
        Column("床日标准(元/日)", "amount", cells.money, True, example="260.00"),
    ],
    key=("year", "level", "category"),
    finish=lambda row, ctx: {k: row[k] for k in ("year", "level", "category", "amount")},
)


def _finish_disease_standard(row, ctx):
    disease = ctx.ref("disease", "病种编码", row["disease"])
    return {
        "year": row["year"], "disease_id": disease[0], "main_operation": _blank(row["main_operation"]),
        "level": row["level"], "amount": row["amount"],
    }


DISEASE_STANDARDS = Resource(
    "disease_standards", DiseaseStandard,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("病种编码", "disease", cells.code(30), True, lookup="disease", cache=True, export="disease__code", example="K35.9"),
        Column("主手术编码", "main_operation", cells.code(30), cache=True, example="47.0901"),
        Column("机构等级", "level", cells.choice(InstitutionLevel.values), True, cache=True, example="二级"),
        Column("支付标准(元/例)", "amount", cells.money, True, example="8000.00"),
    ],
    key=("year", "disease_id", "main_operation", "level"), finish=_finish_disease_standard,
)


# --- budgets, assessments, payments ----------------------------------------------------------------

_SCHEME_BY_LABEL = {label: value for value, label in Scheme.choices}


# `benefits` names the benefit engine's policy, not a payment scheme: no budget or payment is under it.
_PAYMENT_SCHEMES = [value for value in Scheme.values if value not in (Scheme.BENEFITS, Scheme.AUDIT)]


def scheme(value):
    textual = str(value).strip()
    if textual in _PAYMENT_SCHEMES:
        return textual
    if _SCHEME_BY_LABEL.get(textual) in _PAYMENT_SCHEMES:
        return _SCHEME_BY_LABEL[textual]
    raise CellError(f"方案应为以下之一：{'、'.join(_PAYMENT_SCHEMES)}")


def _unit(row, ctx):
    unit = ctx.lookup("unit").get(row["unit_code"])
    if unit is None:
        raise Bad("单位编码", row["unit_code"],
                  "单位编码不存在：应为已导入的医共体编码、机构编码或DRG统筹池编码（区划代码-二级及以上/一级及基层）")
    ctx.require_unit(row["unit_code"], unit)
    return row["unit_code"]


def _finish_budget(row, ctx):
    return {
        "year": row["year"], "scheme": row["scheme"], "unit_code": _unit(row, ctx),
        "insurance_type": _blank(row["insurance_type"]), "amount": row["amount"],
    }


_unit_column = Column("单位编码", "unit_code", cells.code(40), True, lookup="unit", cache=True, example="YGT0001")

BUDGETS = Resource(
    "budgets", Budget,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("方案", "scheme", scheme, True, cache=True, example="capitation"),
        _unit_column,
        Column("险种", "insurance_type", cells.choice(InsuranceType.values), cache=True),
        Column("预算额度", "amount", cells.money, True, example="12000000.00"),
    ],
    key=("year", "scheme", "unit_code", "insurance_type"), finish=_finish_budget,
)

_percentage_points = cells.decimal(2, maximum=Decimal("100"), label="百分点", max_digits=5)

ASSESSMENTS = Resource(
    "assessments", Assessment,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        _unit_column,
        Column("考核得分", "score", cells.decimal(2, maximum=Decimal("100"), label="考核得分", max_digits=5), True, example="92.50"),
        Column("留用上浮(百分点)", "retention_bonus", _percentage_points, export="retention_bonus", example="0"),
        Column("超支分担下调(百分点)", "overspend_reduction", _percentage_points, example="0"),
    ],
    key=("year", "unit_code"),
    finish=lambda row, ctx: {
        "year": row["year"], "unit_code": _unit(row, ctx), "score": row["score"],
        "retention_bonus": row["retention_bonus"] or Decimal("0.00"),
        "overspend_reduction": row["overspend_reduction"] or Decimal("0.00"),
    },
)

PAYMENTS = Resource(
    "payments", Payment,
    [
        Column("年度", "year", cells.year, True, cache=True, example=2024),
        Column("月份", "month", cells.month, True, cache=True, example=1),
        Column("方案", "scheme", scheme, True, cache=True, example="capitation"),
        _unit_column,
        Column("拨付金额", "amount", cells.signed_money, True, example="950000.00"),
    ],
    key=("year", "month", "scheme", "unit_code"),
    finish=lambda row, ctx: {
        "year": row["year"], "month": row["month"], "scheme": row["scheme"], "unit_code": _unit(row, ctx),
        "amount": row["amount"], "source": PaymentSource.IMPORTED,
    },
    insert_only=frozenset({"source"}),
)

# The benefit engine's three resources (SPEC §4's last rows) build on the specs above.
from settlement.benefits.resources import BENEFIT_RESOURCES  # noqa: E402

# In the load order of SPEC §4.
RESOURCES = {
    resource.name: resource
    for resource in (
        REGIONS, DISEASES, INSTITUTIONS, ALLIANCES, MEMBERSHIPS, PERSONS, CONTRACTS, REGISTRATIONS,
        OUTPATIENT_CLAIMS, INPATIENT_CASES, CAPITATION_STANDARDS, SPECIAL_DESIGNATIONS, SPECIAL_STANDARDS,
        FD_SERVICES, DRG_GROUPS, DRG_COEFFICIENTS, BED_DAY_QUOTAS, DISEASE_STANDARDS, BUDGETS, ASSESSMENTS,
        PAYMENTS, *BENEFIT_RESOURCES,
    )
}
BY_MODEL = {resource.model: resource for resource in RESOURCES.values()}


def get_resource(name):
    from .errors import ImportRejected

    try:
        return RESOURCES[name]
    except KeyError:
        raise ImportRejected(f"未知的导入类型“{name}”，可选：{'、'.join(RESOURCES)}") from None
