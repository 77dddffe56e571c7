"""The three benefit resources and the optional columns through the one import pipeline (SPEC §4)."""
from decimal import Decimal as D

import pytest

from settlement.benefits.models import BenefitRule, Referral, Relocation
from settlement.imports.services import import_file
from settlement.models import InpatientCase, OutpatientClaim
from tests.settlement import benefit_builders as b
from tests.settlement.test_import_support import city, model_counts, write_csv, write_xlsx  # noqa: F401

RULE_HEADERS = ["年度", "险种", "就医类型", "机构等级", "门诊类型", "病种编码", "起付标准", "报销比例(%)", "年度限额"]
REFERRAL_HEADERS = ["转诊单号", "身份证号", "转出机构编码", "转入机构编码", "转诊日期", "转诊方向"]
RELOCATION_HEADERS = ["身份证号", "备案日期", "安置地区划代码", "终止日期"]
CLAIM_HEADERS = ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"]
CASE_HEADERS = ["病案号", "身份证号", "机构编码", "入院日期", "出院日期", "主诊断", "总费用", "统筹支付", "个人负担"]


def reasons(result):
    return [(e.row, e.column, e.value, e.reason) for e in result.errors]


def test_benefit_rules_land_and_reupload_changes_nothing(city, tmp_path):
    rows = [[2025, "居民", "门诊", "基层", "", "", "0", "80", "300"],
            [2025, "居民", "门诊", "基层", "", "a15", "0", "75", ""],
            [2025, "居民", "住院", "二级", "", "", "600", "70", ""]]
    path = write_xlsx(tmp_path / "rules.xlsx", RULE_HEADERS, rows)
    assert import_file("benefit_rules", path).created == 3
    tb = BenefitRule.objects.get(disease_prefix="A15")  # prefixes are kept upper-case
    assert (tb.ratio, tb.annual_limit) == (D("75.00"), None)
    again = import_file("benefit_rules", path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_bad_benefit_rules_get_chinese_reasons_and_land_nothing(city, tmp_path):
    rows = [[2025, "居民", "门诊", "基层", "", "", "0", "80", ""],
            [2025, "居民", "急诊", "基层", "", "", "0", "80", ""],
            [2025, "居民", "门诊", "基层", "", "", "0", "120", ""],
            [2025, "居民", "住院", "二级", "慢病门诊", "", "600", "70", ""],
            [2025, "居民", "门诊", "基层", "", "", "0", "70", ""]]
    result = import_file("benefit_rules", write_csv(tmp_path / "rules.csv", RULE_HEADERS, rows))
    assert not result.landed
    got = reasons(result)
    assert got[0] == (3, "就医类型", "急诊", "应为以下之一：门诊、住院")
    assert got[1][:3] == (4, "报销比例(%)", "120") and "不能大于100" in got[1][3]
    assert got[2] == (5, "门诊类型", "慢病门诊", "住院规则不能填写门诊类型，请留空")
    assert got[3] == (6, "", "", "与第2行重复（业务键相同），同一文件中只能出现一次")
    assert model_counts(BenefitRule) == [(0, 0)]


def test_rules_of_an_approved_year_are_refused(city, tmp_path):
    b.approved_table()
    rows = [[2025, "居民", "门诊", "基层", "", "", "0", "85", "300"]]
    result = import_file("benefit_rules", write_csv(tmp_path / "rules.csv", RULE_HEADERS, rows))
    assert not result.landed
    assert reasons(result)[0][:2] == (2, "年度")
    assert "已审批，不能再修改、删除或导入覆盖；如需调整请由市医保局建立新版本" in reasons(result)[0][3]
    assert BenefitRule.objects.get(insurance_type="居民", care_type="门诊", level="基层", visit_type="",
                                   disease_prefix="").ratio == D("80")


def test_hospital_cannot_upload_rules_county_may_propose(city, tmp_path, make_user):
    rows = [[2025, "居民", "门诊", "基层", "", "", "0", "80", ""]]
    path = write_csv(tmp_path / "rules.csv", RULE_HEADERS, rows)
    with pytest.raises(Exception, match="您没有导入“待遇政策规则”的权限"):
        import_file("benefit_rules", path, user=make_user("hospital", city.a.code))
    assert import_file("benefit_rules", path, user=make_user("county", "330502")).created == 1


def test_referrals_land_and_bad_rows_land_nothing(city, tmp_path):
    p = city.p1.id_number
    good = [["ZZ1", p, city.b.code, city.a.code, "2025-03-01", "上转"]]
    assert import_file("referrals", write_csv(tmp_path / "r.csv", REFERRAL_HEADERS, good)).created == 1
    bad = [["ZZ2", p, city.a.code, city.a.code, "2025-03-01", "上转"],
           ["ZZ3", p, city.a.code, city.b.code, "2025-03-01", "平转"],
           ["ZZ4", p, city.a.code, "H33050299999", "2025-03-01", "下转"],
           ["ZZ5", p, city.a.code, city.b.code, "2025-13-01", "下转"],
           ["ZZ6", p, city.a.code, city.b.code, "2025-04-01", "下转"]]
    result = import_file("referrals", write_csv(tmp_path / "bad.csv", REFERRAL_HEADERS, bad))
    got = reasons(result)
    assert got[0] == (2, "转入机构编码", city.a.code, "转入机构不能与转出机构相同")
    assert got[1] == (3, "转诊方向", "平转", "应为以下之一：上转、下转、转外")
    assert got[2] == (4, "转入机构编码", "H33050299999", "转入机构编码“H33050299999”不存在，请先导入或核对编码")
    assert got[3][:2] == (5, "转诊日期")
    assert len(got) == 4 and not result.landed
    assert model_counts(Referral) == [(1, 1)]


def test_hospital_uploads_only_referrals_it_sent_or_received(city, tmp_path, make_user):
    hospital = make_user("hospital", city.c.code)  # 南浔区人民医院, not in the alliance
    p = city.p1.id_number
    rows = [["ZZ1", p, city.c.code, city.a.code, "2025-03-01", "上转"],
            ["ZZ2", p, city.b.code, city.a.code, "2025-03-01", "上转"]]
    result = import_file("referrals", write_csv(tmp_path / "r.csv", REFERRAL_HEADERS, rows), user=hospital)
    assert reasons(result) == [(3, "转出机构编码", city.b.code, "不在您的数据范围内：医疗机构只能上传本机构转出或转入的转诊记录")]
    assert Referral.objects.count() == 0


def test_relocations_are_bureau_data(city, tmp_path, make_user):
    p = city.p1.id_number
    rows = [[p, "2025-02-01", "460100", ""], [p, "2025-09-01", "460100", "2025-12-31"]]
    path = write_csv(tmp_path / "r.csv", RELOCATION_HEADERS, rows)
    with pytest.raises(Exception, match="您没有导入“异地安置备案”的权限"):
        import_file("relocations", path, user=make_user("hospital", city.a.code))
    assert import_file("relocations", path, user=make_user("county", "330502")).created == 2
    bad = [[p, "2025-05-01", "46010", ""], [p, "2025-06-01", "460100", "2025-01-01"], ["330502197005170031", "2025-06-01", "460100", ""]]
    result = import_file("relocations", write_csv(tmp_path / "bad.csv", RELOCATION_HEADERS, bad))
    got = reasons(result)
    assert got[0][:3] == (2, "安置地区划代码", "46010")
    assert got[1] == (3, "终止日期", "2025-01-01", "终止日期不能早于备案日期")
    assert got[2][:2] == (4, "身份证号")
    assert Relocation.objects.count() == 2


def test_older_claim_files_load_unchanged_and_in_scope_cost_is_kept(city, tmp_path):
    p = city.p1.id_number
    new = write_csv(tmp_path / "new.csv", [*CLAIM_HEADERS, "政策范围内费用"],
                    [["MZ1", p, city.a.code, "2025-01-05", "普通门诊", "", "100.00", "60.00", "40.00", "否", "90.00"]])
    assert import_file("outpatient_claims", new).created == 1
    old = write_csv(tmp_path / "old.csv", CLAIM_HEADERS,
                    [["MZ1", p, city.a.code, "2025-01-05", "普通门诊", "", "100.00", "60.00", "40.00", "否"]])
    again = import_file("outpatient_claims", old)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    assert OutpatientClaim.objects.get().in_scope_cost == D("90.00")
    too_much = write_csv(tmp_path / "bad.csv", [*CLAIM_HEADERS, "政策范围内费用"],
                         [["MZ2", p, city.a.code, "2025-01-05", "普通门诊", "", "100.00", "60.00", "40.00", "否", "100.01"]])
    result = import_file("outpatient_claims", too_much)
    assert reasons(result) == [(2, "政策范围内费用", "100.01", "政策范围内费用（100.01）不能大于总费用（100.00）")]


def test_cases_take_discharge_mode_by_code_or_name(city, tmp_path):
    p = city.p1.id_number
    headers = [*CASE_HEADERS, "离院方式", "政策范围内费用"]
    rows = [["ZY1", p, city.a.code, "2025-01-01", "2025-01-08", "I63.9", "15000.00", "11000.00", "4000.00", "死亡", ""],
            ["ZY2", p, city.a.code, "2025-02-01", "2025-02-08", "I63.9", "15000.00", "11000.00", "4000.00", 2, "14000"]]
    assert import_file("inpatient_cases", write_xlsx(tmp_path / "c.xlsx", headers, rows)).created == 2
    died, moved = InpatientCase.objects.order_by("serial")
    assert (died.discharge_mode, died.died, died.in_scope_cost) == ("5", True, None)
    assert (moved.discharge_mode, moved.was_transferred, moved.in_scope_cost) == ("2", True, D("14000.00"))
    old = write_csv(tmp_path / "old.csv", CASE_HEADERS, [r[:9] for r in rows])
    assert import_file("inpatient_cases", old).unchanged == 2
    assert InpatientCase.objects.get(serial="ZY1").discharge_mode == "5"
    bad = [["ZY3", p, city.a.code, "2025-03-01", "2025-03-08", "I63.9", "100.00", "60.00", "40.00", "6", ""]]
    result = import_file("inpatient_cases", write_csv(tmp_path / "bad.csv", headers, bad))
    assert reasons(result)[0][:3] == (2, "离院方式", "6")
    assert reasons(result)[0][3].startswith("离院方式应为以下代码之一：1 医嘱离院、2 医嘱转院")


def test_budgets_cannot_name_the_benefits_policy(city, tmp_path):
    rows = [[2025, "benefits", "YGT0001", "", "1000.00"]]
    result = import_file("budgets", write_csv(tmp_path / "b.csv", ["年度", "方案", "单位编码", "险种", "预算额度"], rows))
    assert reasons(result)[0][:3] == (2, "方案", "benefits")
    assert "benefits" not in reasons(result)[0][3]


def test_hospital_reads_only_referrals_it_sent_or_received(city, make_user):
    from alliances.scope import restrict

    b.referral(city.p1, city.b, city.a, b.day(3, 1), "上转")
    b.referral(city.p1, city.a, city.c, b.day(4, 1), "上转")
    b.referral(city.p1, city.b, city.c, b.day(5, 1), "上转")
    seen = restrict(Referral.objects.all(), make_user("hospital", city.c.code))
    assert sorted(r.referred_on.month for r in seen) == [4, 5]
    assert restrict(Relocation.objects.all(), make_user("hospital", city.c.code)).count() == 0
