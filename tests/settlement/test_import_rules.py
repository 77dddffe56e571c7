"""Row rules, all-or-nothing versus land-good-rows, idempotent re-upload with history, and scope."""
import datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from alliances.models import Membership
from contracts.models import Contract, FamilyDoctorTeam
from settlement.imports.errors import ImportRejected
from settlement.imports.services import import_file
from settlement.models import OutpatientClaim
from tests import factories
from tests.settlement.test_import_support import city, model_counts, write_csv, write_xlsx  # noqa: F401

CLAIM_HEADERS = ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"]
CONTRACT_HEADERS = ["身份证号", "机构编码", "团队名称", "签约日期", "解约日期", "服务包", "核实日期"]


def claim(id_number, serial, institution="H33050200001", total="100.00", fund="60.00", personal="40.00"):
    return [serial, id_number, institution, "2024-01-05", "普通门诊", "", total, fund, personal, "否"]


def test_reupload_changes_nothing_and_writes_no_history(city, tmp_path):
    rows = [claim(city.p1.id_number, f"MZ{i}") for i in range(5)]
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, rows)
    first = import_file("outpatient_claims", path)
    assert (first.created, first.updated, first.unchanged) == (5, 0, 0)
    assert model_counts(OutpatientClaim) == [(5, 5)]
    again = import_file("outpatient_claims", path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert model_counts(OutpatientClaim) == [(5, 5)]


def test_changed_row_updates_with_one_history_row(city, tmp_path, make_user):
    user = make_user("city")
    write = lambda rows: write_csv(tmp_path / "claims.csv", CLAIM_HEADERS, rows)  # noqa: E731
    import_file("outpatient_claims", write([claim(city.p1.id_number, "MZ1"), claim(city.p1.id_number, "MZ2")]), user=user)
    result = import_file("outpatient_claims", write([
        claim(city.p1.id_number, "MZ1", total="110.00", fund="70.00"), claim(city.p1.id_number, "MZ2"),
    ]), user=user)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    changed = OutpatientClaim.objects.get(serial="MZ1")
    assert (changed.total_cost, changed.fund_paid) == (Decimal("110.00"), Decimal("70.00"))
    history = changed.history.order_by("history_id")
    assert [h.history_type for h in history] == ["+", "~"]
    assert history.last().history_user == user and history.last().total_cost == Decimal("110.00")
    assert OutpatientClaim.history.count() == 3


def test_all_or_nothing_by_default(city, tmp_path):
    rows = [claim(city.p1.id_number, "MZ1"), claim(city.p1.id_number, "MZ2", institution="H33050299999")]
    result = import_file("outpatient_claims", write_csv(tmp_path / "c.csv", CLAIM_HEADERS, rows))
    assert not result.landed and result.bad_rows == 1
    assert [(e.row, e.column, e.value, e.reason) for e in result.errors] == [
        (3, "机构编码", "H33050299999", "机构编码“H33050299999”不存在，请先导入或核对编码"),
    ]
    assert model_counts(OutpatientClaim) == [(0, 0)]


def test_land_good_rows_lands_exactly_the_good_ones_and_returns_the_bad(city, tmp_path):
    rows = [
        claim(city.p1.id_number, "MZ1"),
        claim(city.p1.id_number, "MZ2", personal="30.00"),
        claim(city.p2.id_number, "MZ3"),
        claim(city.p2.id_number, "MZ1"),  # same business key as row 2
        ["MZ5", city.p1.id_number, "H33050200001", "2024-01-05", "急诊", "", "-5", "0", "0", "否"],
    ]
    errors_path = tmp_path / "claims.errors.xlsx"
    result = import_file("outpatient_claims", write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, rows),
                         land_good_rows=True, error_path=errors_path)
    assert result.landed and (result.rows, result.created, result.bad_rows) == (5, 2, 3)
    assert sorted(OutpatientClaim.objects.values_list("serial", "person__id_number")) == [
        ("MZ1", city.p1.id_number), ("MZ3", city.p2.id_number),
    ]
    sheet = load_workbook(errors_path).active
    table = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert table[0] == [*CLAIM_HEADERS, "错误原因"]
    assert [row[0] for row in table[1:]] == ["MZ2", "MZ1", "MZ5"]
    assert table[1][-1] == "“总费用”统筹支付（60.00）与个人负担（30.00）之和应等于总费用（允许误差0.01元）"
    assert table[2][-1] == "与第2行重复（业务键相同），同一文件中只能出现一次"
    assert table[3][-1] == ("“门诊类型”应为以下之一：普通门诊、慢病门诊、特病门诊、二类门特；“总费用”金额不能小于0")


def test_cli_land_good_rows_writes_errors_beside_the_input(city, tmp_path, capsys):
    from django.core.management import call_command

    path = write_csv(tmp_path / "march.csv", CLAIM_HEADERS, [claim(city.p1.id_number, "MZ1"), claim("", "MZ2")])
    call_command("import_data", "outpatient_claims", str(path), "--land-good-rows")
    out = capsys.readouterr().out
    assert "新增1行" in out and "1行有错误未导入" in out
    assert f"错误行已写入：{tmp_path / 'march.errors.xlsx'}" in out
    rows = list(load_workbook(tmp_path / "march.errors.xlsx").active.iter_rows(values_only=True))
    assert rows[1][0] == "MZ2" and rows[1][-1] == "“身份证号”必填项不能为空"


def test_contract_overlap_against_database_and_inside_file(city, tmp_path):
    factories.contract(city.p1, city.a, datetime.date(2023, 1, 1), datetime.date(2024, 6, 30))
    rows = [
        [city.p1.id_number, "H33050200001", "团队甲", "2024-06-01", "", "", ""],  # overlaps the stored one
        [city.p2.id_number, "H33050200001", "团队甲", "2024-01-01", "2024-12-31", "", ""],
        [city.p2.id_number, "H33050200002", "团队乙", "2024-12-01", "", "", ""],  # overlaps row 3
    ]
    result = import_file("contracts", write_csv(tmp_path / "c.csv", CONTRACT_HEADERS, rows))
    assert [(e.row, e.column) for e in result.errors] == [(2, "签约日期"), (4, "签约日期")]
    assert "该参保人在2023-01-01至2024-06-30已与吴兴区人民医院签约" in result.errors[0].reason
    assert result.errors[1].reason == "与本文件第3行的签约期间重叠，同一时间只能有一份有效签约"
    assert Contract.objects.count() == 1 and FamilyDoctorTeam.objects.count() == 1


def test_membership_one_alliance_at_a_time(city, tmp_path):
    other = factories.alliance(lead=city.c, code="YGT0002")
    rows = [["YGT0002", "H33050200002", "2024-01-01", ""]]
    result = import_file("memberships", write_csv(tmp_path / "m.csv", ["医共体编码", "机构编码", "加入日期", "退出日期"], rows))
    [error] = result.errors
    assert (error.row, error.column) == (2, "加入日期")
    assert error.reason == f"该机构在2020-01-01起至今已属于{city.alliance.name}，同一机构同一时间只能属于一个医共体"
    assert Membership.objects.filter(alliance=other).count() == 1  # only the lead hospital from the factory


def test_hospital_may_not_upload_for_another_institution(city, tmp_path, make_user):
    user = make_user("hospital", "H33050200002")  # member, not lead
    rows = [claim(city.p1.id_number, "MZ1", institution="H33050200002"), claim(city.p1.id_number, "MZ2", institution="H33050200001")]
    result = import_file("outpatient_claims", write_csv(tmp_path / "c.csv", CLAIM_HEADERS, rows), user=user)
    [error] = result.errors
    assert (error.row, error.column, error.value) == (3, "机构编码", "H33050200001")
    assert error.reason.startswith("不在您的数据范围内")
    assert OutpatientClaim.objects.count() == 0


def test_lead_hospital_may_upload_for_its_members(city, tmp_path, make_user):
    user = make_user("hospital", "H33050200001")
    rows = [claim(city.p1.id_number, "MZ1", institution="H33050200002"), claim(city.p1.id_number, "MZ2", institution="H33050300001")]
    result = import_file("outpatient_claims", write_csv(tmp_path / "c.csv", CLAIM_HEADERS, rows), user=user, land_good_rows=True)
    assert [e.row for e in result.errors] == [3]
    assert list(OutpatientClaim.objects.values_list("institution__code", flat=True)) == ["H33050200002"]
    assert OutpatientClaim.history.get().history_user == user


def test_hospital_may_not_set_verification_date(city, tmp_path, make_user):
    user = make_user("hospital", "H33050200001")
    rows = [[city.p1.id_number, "H33050200001", "团队甲", "2024-01-01", "", "", "2024-01-05"]]
    result = import_file("contracts", write_csv(tmp_path / "c.csv", CONTRACT_HEADERS, rows), user=user)
    [error] = result.errors
    assert (error.column, error.reason) == ("核实日期", "核实日期只能由卫健委或医保局工作人员填写，医疗机构上传时请留空")
    assert Contract.objects.count() == 0


def test_blank_verification_in_a_later_upload_keeps_the_verification(city, tmp_path, make_user):
    health = make_user("health", "330502")
    hospital = make_user("hospital", "H33050200001")
    verified = [[city.p1.id_number, "H33050200001", "团队甲", "2024-01-01", "", "", "2024-01-05"]]
    import_file("contracts", write_csv(tmp_path / "v.csv", CONTRACT_HEADERS, verified), user=health)
    plain = [[city.p1.id_number, "H33050200001", "团队甲", "2024-01-01", "", "", ""]]
    result = import_file("contracts", write_csv(tmp_path / "p.csv", CONTRACT_HEADERS, plain), user=hospital)
    assert (result.updated, result.unchanged) == (0, 1)
    contract = Contract.objects.get()
    assert (contract.verified_on, contract.verified_by) == (datetime.date(2024, 1, 5), health)


def test_county_staff_only_their_county(city, tmp_path, make_user):
    user = make_user("county", "330503")
    rows = [claim(city.p1.id_number, "MZ1", institution="H33050300001"), claim(city.p1.id_number, "MZ2", institution="H33050200001")]
    result = import_file("outpatient_claims", write_csv(tmp_path / "c.csv", CLAIM_HEADERS, rows), user=user)
    assert [(e.row, e.value) for e in result.errors] == [(3, "H33050200001")]
    budgets = [[2024, "drg", "330503-二级及以上", "", "1"], [2024, "drg", "330502-二级及以上", "", "1"]]
    result = import_file("budgets", write_csv(tmp_path / "b.csv", ["年度", "方案", "单位编码", "险种", "预算额度"], budgets), user=user)
    assert [(e.row, e.column) for e in result.errors] == [(3, "单位编码")]


def test_master_data_needs_the_add_permission(city, tmp_path, make_user):
    path = write_csv(tmp_path / "d.csv", ["病种编码", "病种名称", "病种类别"], [["E11", "糖尿病", "慢性病"]])
    for role, scope in (("hospital", "H33050200001"), ("county", "330502"), ("auditor", None)):
        with pytest.raises(ImportRejected, match="您没有导入“病种”的权限"):
            import_file("diseases", path, user=make_user(role, scope))
    assert import_file("diseases", path, user=make_user("city")).created == 1


def test_unknown_person_and_wrong_check_digit(city, tmp_path):
    from contracts.validators import build_resident_id

    stranger = build_resident_id("330502", datetime.date(1980, 1, 1), 9, "M")
    rows = [claim(stranger, "MZ1"), claim(stranger[:17] + ("0" if stranger[17] != "0" else "1"), "MZ2")]
    result = import_file("outpatient_claims", write_csv(tmp_path / "c.csv", CLAIM_HEADERS, rows))
    assert [e.reason for e in result.errors] == ["该身份证号的参保人不存在，请先导入参保人", "身份证号校验位错误，请核对号码"]


def test_amount_that_does_not_fit_the_column_is_a_bad_row(city, tmp_path):
    rows = [claim(city.p1.id_number, "MZ1", total="123456789012345.00", fund="123456789012345.00", personal="0")]
    [first, second] = import_file("outpatient_claims", write_csv(tmp_path / "c.csv", CLAIM_HEADERS, rows)).errors
    assert (first.column, first.reason) == ("总费用", "金额过大：整数部分最多14位")
    assert second.column == "统筹支付"
    assert OutpatientClaim.objects.count() == 0


def test_lookup_cache_overflow_keeps_the_current_chunk(city):
    from contracts.models import InsuredPerson
    from settlement.imports.lookups import Lookup

    lookup = Lookup(InsuredPerson, "id_number", ("pk",), cache_limit=2)
    lookup.resolve({city.p1.id_number})
    lookup.resolve({city.p1.id_number, city.p2.id_number, "330502190001010000"})
    assert lookup.get(city.p1.id_number) == (city.p1.pk,)
    assert lookup.get(city.p2.id_number) == (city.p2.pk,)
    assert lookup.get("330502190001010000") is None


def test_hospital_registers_persons_of_its_own_counties_only(city, tmp_path, make_user):
    from contracts.models import InsuredPerson
    from contracts.validators import build_resident_id

    user = make_user("hospital", "H33050200001")
    own = build_resident_id("330502", datetime.date(1988, 8, 8), 3, "M")
    other = build_resident_id("330503", datetime.date(1988, 8, 8), 3, "M")
    rows = [[own, "赵六", "居民", "330502"], [other, "钱七", "居民", "330503"]]
    result = import_file("persons", write_csv(tmp_path / "p.csv", ["身份证号", "姓名", "险种", "参保区划代码"], rows),
                         user=user, land_good_rows=True)
    assert [(e.row, e.column) for e in result.errors] == [(3, "参保区划代码")]
    assert InsuredPerson.objects.filter(id_number__in=[own, other]).count() == 1
