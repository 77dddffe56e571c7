"""Every resource of SPEC §4 lands from a small file with its exact headers and values."""
import datetime
from decimal import Decimal

from alliances.models import Alliance, Institution, Membership, Region
from contracts.models import Contract, Disease, DiseaseRegistration, FamilyDoctorTeam, InsuredPerson
from contracts.validators import build_resident_id
from settlement.imports.services import import_file
from settlement.models import (
    Assessment, BedDayQuota, Budget, CapitationStandard, DiseaseStandard, DrgCoefficient, DrgGroup,
    FamilyDoctorService, InpatientCase, OutpatientClaim, Payment, SpecialDesignation, SpecialStandard,
)
from tests.settlement.test_import_support import city, write_csv, write_xlsx  # noqa: F401

D = Decimal
day = datetime.date


def load(tmp_path, resource, headers, rows, fmt="xlsx", **kwargs):
    path = tmp_path / f"{resource}.{fmt}"
    (write_xlsx if fmt == "xlsx" else write_csv)(path, headers, rows)
    result = import_file(resource, path, **kwargs)
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.landed
    return result


def test_regions_parent_may_come_earlier_in_the_same_file(db, tmp_path):
    result = load(tmp_path, "regions", ["区划代码", "名称", "上级区划代码"],
                  [["330500", "湖州市", None], ["330502", "吴兴区", "330500"], [330503, "南浔区", "330500"]])
    assert (result.created, result.updated) == (3, 0)
    assert Region.objects.get(code="330503").parent.code == "330500"
    assert Region.objects.get(code="330500").parent is None
    assert Region.history.filter(history_type="+").count() == 3


def test_diseases(db, tmp_path):
    load(tmp_path, "diseases", ["病种编码", "病种名称", "病种类别"], [["I10", "高血压", "慢性病"], ["F20", "精神分裂症", "床日"]], fmt="csv")
    assert dict(Disease.objects.values_list("code", "category")) == {"I10": "慢性病", "F20": "床日"}


def test_institutions_blank_kind_is_general(city, tmp_path):
    load(tmp_path, "institutions", ["机构编码", "机构名称", "区划代码", "机构等级", "机构类别"],
         [["H33050200009", "环渚卫生院", "330502", "基层", ""], ["H33050300009", "南浔中医院", "330503", "二级", "中医"]])
    new = Institution.objects.get(code="H33050200009")
    assert (new.county.code, new.level, new.kind, new.is_public) == ("330502", "基层", "综合", True)
    assert Institution.objects.get(code="H33050300009").kind == "中医"


def test_alliances_and_memberships(city, tmp_path):
    load(tmp_path, "alliances", ["医共体编码", "医共体名称", "区划代码", "牵头医院编码"],
         [["YGT0009", "南浔区医共体", "330503", "H33050300001"]])
    alliance = Alliance.objects.get(code="YGT0009")
    assert (alliance.lead_hospital, alliance.county.code, alliance.budget_status) == (city.c, "330503", "未申请")
    load(tmp_path, "memberships", ["医共体编码", "机构编码", "加入日期", "退出日期"],
         [["YGT0009", "H33050300001", "2024-01-01", None]])
    membership = Membership.objects.get(alliance=alliance)
    assert (membership.institution, membership.joined_on, membership.left_on) == (city.c, day(2024, 1, 1), None)


def test_a_second_alliance_of_a_county_needs_a_default_through_the_import(city, tmp_path):
    """SPEC §6.4 Coverage: several alliances in a county → exactly one 默认医共体; bad rows land nothing."""
    headers = ["医共体编码", "医共体名称", "区划代码", "牵头医院编码", "默认医共体"]
    path = tmp_path / "alliances.xlsx"
    write_xlsx(path, headers, [["YGT0009", "南浔区医共体", "330503", "H33050300001", ""],
                               ["YGT0010", "南浔区第二医共体", "330503", "H33050300001", "否"]])
    result = import_file("alliances", path)
    assert not result.landed and not Alliance.objects.filter(code__in=["YGT0009", "YGT0010"]).exists()
    (error,) = result.errors
    assert (error.row, error.column) == (3, "默认医共体")
    assert "必须将其中一个设为县区默认医共体" in error.reason and "南浔区医共体（YGT0009）" in error.reason

    write_xlsx(path, headers, [["YGT0009", "南浔区医共体", "330503", "H33050300001", "是"],
                               ["YGT0010", "南浔区第二医共体", "330503", "H33050300001", "是"]])
    (error,) = import_file("alliances", path).errors
    assert error.row == 3 and "该县区已有默认医共体南浔区医共体（YGT0009）" in error.reason

    load(tmp_path, "alliances", headers, [["YGT0009", "南浔区医共体", "330503", "H33050300001", "是"],
                                          ["YGT0010", "南浔区第二医共体", "330503", "H33050300001", ""]])
    assert dict(Alliance.objects.filter(county__code="330503").values_list("code", "is_default")) == {
        "YGT0009": True, "YGT0010": False,
    }
    # Re-uploading without the column keeps the stored flag (older files still load).
    load(tmp_path, "alliances", headers[:4], [["YGT0010", "南浔区第二医共体", "330503", "H33050300001"]])
    assert Alliance.objects.get(code="YGT0009").is_default


def test_persons_birth_and_sex_read_from_the_id(city, tmp_path):
    number = build_resident_id("330503", day(1990, 12, 31), 7, "F")
    load(tmp_path, "persons", ["身份证号", "姓名", "险种", "参保区划代码"], [[number, "王五", "职工", "330503"]])
    person = InsuredPerson.objects.get(id_number=number)
    assert (person.birth_date, person.sex, person.insurance_type, person.county.code) == (day(1990, 12, 31), "F", "职工", "330503")


def test_contracts_create_missing_team_and_denormalise_institution(city, tmp_path, make_user):
    health = make_user("health", "330502")
    load(tmp_path, "contracts", ["身份证号", "机构编码", "团队名称", "签约日期", "解约日期", "服务包", "核实日期"],
         [[city.p1.id_number, "H33050200002", "八里店一团队", "2024-01-01", "", "基础包", "2024-01-10"],
          [city.p2.id_number, "H33050200001", "人民医院团队", "2024-02-01", "2024-12-31", "PKG1", ""]], user=health)
    first = Contract.objects.get(person=city.p1)
    assert (first.institution, first.team.institution, first.team.name) == (city.b, city.b, "八里店一团队")
    assert (first.package, first.verified_on, first.verified_by) == (city.package, day(2024, 1, 10), health)
    second = Contract.objects.get(person=city.p2)
    assert (second.end, second.package, second.verified_on, second.verified_by) == (day(2024, 12, 31), city.package, None, None)
    assert FamilyDoctorTeam.objects.count() == 2
    assert FamilyDoctorTeam.history.filter(history_type="+").count() == 2


def test_registrations(city, tmp_path):
    load(tmp_path, "registrations", ["身份证号", "病种编码", "备案日期", "终止日期"], [[city.p1.id_number, "I10", "2024-03-15", None]])
    registration = DiseaseRegistration.objects.get()
    assert (registration.person, registration.disease, registration.filed_on) == (city.p1, city.chronic, day(2024, 3, 15))


def test_outpatient_claims_take_insurance_type_from_person(city, tmp_path):
    load(tmp_path, "outpatient_claims",
         ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"],
         [["MZ001", city.p1.id_number, "H33050200001", "2024-01-05", "普通门诊", "", "100.50", "60.25", "40.25", "否"],
          ["MZ002", city.p2.id_number, "H33050200002", "2024-01-06", "慢病门诊", "I10", 88, 80, 8, "Y"]])
    first, second = OutpatientClaim.objects.order_by("serial")
    assert (first.insurance_type, first.total_cost, first.fund_paid, first.referral) == ("居民", D("100.50"), D("60.25"), False)
    assert (second.insurance_type, second.disease, second.visit_type, second.referral) == ("职工", city.chronic, "慢病门诊", True)


def test_inpatient_cases(city, tmp_path):
    load(tmp_path, "inpatient_cases",
         ["病案号", "身份证号", "机构编码", "入院日期", "出院日期", "主诊断", "主手术", "DRG编码", "总费用", "统筹支付", "个人负担", "不完整住院", "新技术", "床日类别"],
         [["ZY1", city.p1.id_number, "H33050200001", "2024-01-01", "2024-01-08", "I63.9", "", "BR23", "15000.00", "11000.00", "4000.00", "1", "0", ""],
          ["ZY2", city.p2.id_number, "H33050200001", "2024-02-01", "2024-03-01", "F20.0", "", "", "9000", "8000", "1000", "否", "否", "精神"]])
    first = InpatientCase.objects.get(serial="ZY1")
    assert (first.incomplete_stay, first.new_technology, first.drg_code, first.length_of_stay) == (True, False, "BR23", 7)
    assert InpatientCase.objects.get(serial="ZY2").bed_day_category == "精神"


def test_standards_groups_and_quotas(city, tmp_path):
    load(tmp_path, "capitation_standards", ["年度", "险种", "年龄段", "病种编码", "人头标准(元/人·年)"],
         [[2024, "居民", "60周岁及以下", "", "360"], [2024, "居民", "60周岁以上", "I10", "480.50"]])
    general = CapitationStandard.objects.get(disease=None)
    assert (general.amount, general.age_band, general.status, general.valid_years) == (D("360.00"), "60周岁及以下", "草稿", 2)
    load(tmp_path, "special_standards", ["年度", "病种编码", "人头标准(元/人·年)"], [[2024, "M05", "5000"]])
    assert SpecialStandard.objects.get().amount == D("5000.00")
    load(tmp_path, "drg_groups", ["年度", "DRG编码", "名称", "基准点数", "病组均次费用", "床日点数", "同病同价", "中医扶持"],
         [[2024, "BR23", "脑缺血", "120.5", "12050", "", "是", "N"]])
    group = DrgGroup.objects.get()
    assert (group.base_points, group.average_cost, group.bed_day_points, group.same_price, group.tcm_support) == (
        D("120.5000"), D("12050.00"), None, True, False)
    load(tmp_path, "drg_coefficients", ["年度", "机构编码", "差异系数"], [[2024, "H33050200001", "1.05"]])
    assert DrgCoefficient.objects.get().coefficient == D("1.0500")
    load(tmp_path, "bed_day_quotas", ["年度", "机构等级", "床日类别", "床日标准(元/日)"], [[2024, "二级", "精神", "260"]])
    assert BedDayQuota.objects.get().amount == D("260.00")
    load(tmp_path, "disease_standards", ["年度", "病种编码", "主手术编码", "机构等级", "支付标准(元/例)"],
         [[2024, "I10", "", "二级", "8000"], [2024, "I10", "47.0901", "二级", "9000"]])
    assert sorted(DiseaseStandard.objects.values_list("main_operation", "amount")) == [("", D("8000.00")), ("47.0901", D("9000.00"))]


def test_designations_and_fd_services(city, tmp_path):
    load(tmp_path, "special_designations", ["年度", "身份证号", "病种编码", "治疗机构编码", "签约机构编码"],
         [[2024, city.p1.id_number, "M05", "H33050200001", "H33050200002"]])
    designation = SpecialDesignation.objects.get()
    assert (designation.institution, designation.signing_institution, designation.disease) == (city.a, city.b, city.special2)
    load(tmp_path, "fd_services", ["身份证号", "机构编码", "服务日期", "服务项目"],
         [[city.p1.id_number, "H33050200002", "2024-03-01", "健康评估"], [city.p1.id_number, "H33050200002", "2024-04-01", "健康评估"]])
    assert FamilyDoctorService.objects.filter(person=city.p1).count() == 2


def test_budgets_assessments_payments_by_unit_code(city, tmp_path):
    load(tmp_path, "budgets", ["年度", "方案", "单位编码", "险种", "预算额度"],
         [[2024, "capitation", "YGT0001", "", "12000000"], [2024, "drg", "330502-二级及以上", "职工", "5000000.5"],
          [2024, "按床日付费", "H33050200001", "居民", "10"]])
    assert sorted(Budget.objects.values_list("scheme", "unit_code", "insurance_type", "amount")) == [
        ("bed_day", "H33050200001", "居民", D("10.00")),
        ("capitation", "YGT0001", "", D("12000000.00")),
        ("drg", "330502-二级及以上", "职工", D("5000000.50")),
    ]
    load(tmp_path, "assessments", ["年度", "单位编码", "考核得分", "留用上浮(百分点)", "超支分担下调(百分点)"],
         [[2024, "YGT0001", "92.5", "5", ""]])
    assessment = Assessment.objects.get()
    assert (assessment.score, assessment.retention_bonus, assessment.overspend_reduction) == (D("92.50"), D("5.00"), D("0.00"))
    load(tmp_path, "payments", ["年度", "月份", "方案", "单位编码", "拨付金额"], [[2024, 1, "alliance_budget", "YGT0001", "950000"]])
    payment = Payment.objects.get()
    assert (payment.month, payment.amount, payment.source) == (1, D("950000.00"), "导入")


def test_no_templates_example_ever_lands(city, tmp_path):
    """Issue 18 finding 7, for every resource: the example lives on the 说明 sheet, so a template
    uploaded back as it is has no data row, even when the user asks to land the good rows."""
    from io import StringIO

    from django.core.management import call_command

    from settlement.imports.export import write_template
    from settlement.imports.resources import RESOURCES

    for name, spec in RESOURCES.items():
        path = tmp_path / f"{name}.xlsx"
        with open(path, "wb") as target:
            write_template(spec, target)
        before = spec.model.objects.count()
        result = import_file(name, path, land_good_rows=True)
        assert (result.rows, result.bad_rows, result.created, result.updated) == (0, 0, 0, 0), name
        assert spec.model.objects.count() == before, name
    out = StringIO()
    call_command("import_data", "persons", str(tmp_path / "persons.xlsx"), "--land-good-rows", stdout=out)
    assert out.getvalue().strip() == "参保人：共0行，新增0行，更新0行，未变化0行。"
