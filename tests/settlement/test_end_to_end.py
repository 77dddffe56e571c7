"""From spreadsheets to the exported statement (SPEC §4, §5, §6.1, §7), through the real doors:
`import_data` for every file, the standards' and the policy's approval services, `settle` without
--sync on a real Celery worker (one task per unit), `export_settlement` to xlsx and csv.

The city, by hand (year 2025):
- 吴兴区 330502 under 湖州市 330500. Institutions: H33050200001 二级 (lead of YGT-A), H33050200002 基层 (YGT-A),
  H33050200003 二级 (lead of YGT-B), H33050200004 三级 (in no alliance).
- P1 居民, born 1970-05-17 → 54 on 2025-01-01 → 60周岁及以下. Verified contract at H…0002 since 2024 → 12 months
  in YGT-A. 高血压 I10 filed 2025-04-10 → counts from April: 9 months.
- P2 职工, born 1950-03-01 → 74 → 60周岁以上. Verified contract at H…0003 (YGT-B) from 2025-07-15: July counts
  (starts before the month's last day) → July–December, 6 months.
- P3 居民: contract at H…0001 never verified (no 核实日期) → not a head anywhere.
- Standards (元/人·年): 居民≤60 1,200.00; 居民>60 2,400.00; 职工≤60 1,800.00; 职工>60 3,600.00; 居民≤60 I10 600.00.

YGT-A: Q = 12 × 1,200/12 + 9 × 600/12 = 1,200.00 + 450.00 = 1,650.00
       A = 300.00 (P1 普通门诊 at H…0002) + 200.00 (P1 慢病门诊 at H…0004, outside the alliance, deducted too)
         = 500.00; P1's 特病门诊 999.00 is not a counted visit type; P3's 500.00 is not a head's.
       S = 1,150.00; assessment +5 points → 90%: unit 1,035.00, fund 115.00; E = 500.00 + 1,035.00 = 1,535.00
       已拨付 = A 500.00 (claims paid as they occur) + imported payment 100.00 = 600.00 → year-end +935.00
YGT-B: Q = 6 × 3,600/12 = 1,800.00
       A = 1,500.00 (P2 at H…0003, August) + 800.00 (P2 at H…0004, September, outside) = 2,300.00;
         P2's March claim 700.00 is before the contract's first counted month.
       S = −500.00, no assessment → 85%: unit −425.00, fund −75.00; E = 2,300.00 − 425.00 = 1,875.00
       已拨付 = 2,300.00 → year-end −425.00 (negative: the alliance refunds).
"""
import csv
import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from openpyxl import Workbook, load_workbook

from contracts.validators import build_resident_id
from settlement.engine.models import RunStatus, SettlementRun
from settlement.engine.presets import load_preset
from settlement.engine.standards import approve_capitation_standards
from settlement.models import ApprovalStatus, CapitationStandard, OutpatientClaim
from tests.worker import wait_for

D = Decimal
YEAR = 2025
P1 = build_resident_id("330502", datetime.date(1970, 5, 17), 11, "M")
P2 = build_resident_id("330502", datetime.date(1950, 3, 1), 12, "F")
P3 = build_resident_id("330502", datetime.date(1980, 8, 8), 13, "M")
HEADERS = ["单位编码", "单位名称", "预算额度", "实际支出", "结余超支", "单位分担留用", "基金分担留用", "应得金额",
           "已拨付", "违规扣款", "年终清算金额"]

FILES = [  # (resource, format, headers, rows) in the load order of SPEC §4
    ("regions", "xlsx", ["区划代码", "名称", "上级区划代码"], [
        ["330500", "湖州市", ""], ["330502", "吴兴区", "330500"],
    ]),
    ("diseases", "csv", ["病种编码", "病种名称", "病种类别"], [["I10", "高血压", "慢性病"]]),
    ("institutions", "xlsx", ["机构编码", "机构名称", "区划代码", "机构等级", "机构类别"], [
        ["H33050200001", "吴兴区人民医院", "330502", "二级", "综合"],
        ["H33050200002", "织里镇卫生院", "330502", "基层", "综合"],
        ["H33050200003", "吴兴区中医院", "330502", "二级", "中医"],
        ["H33050200004", "湖州市中心医院", "330502", "三级", "综合"],
    ]),
    # Two alliances in one county: one is the default (SPEC §6.4 Coverage).
    ("alliances", "xlsx", ["医共体编码", "医共体名称", "区划代码", "牵头医院编码", "默认医共体"], [
        ["YGT-A", "吴兴区人民医院医共体", "330502", "H33050200001", "是"],
        ["YGT-B", "吴兴区中医院医共体", "330502", "H33050200003", "否"],
    ]),
    ("memberships", "xlsx", ["医共体编码", "机构编码", "加入日期", "退出日期"], [
        ["YGT-A", "H33050200001", datetime.date(2020, 1, 1), None],
        ["YGT-A", "H33050200002", "2020-01-01", ""],
        ["YGT-B", "H33050200003", "2020-01-01", ""],
    ]),
    ("persons", "csv", ["身份证号", "姓名", "险种", "参保区划代码"], [
        [P1, "张一", "居民", "330502"], [P2, "李二", "职工", "330502"], [P3, "王三", "居民", "330502"],
    ]),
    ("contracts", "xlsx", ["身份证号", "机构编码", "团队名称", "签约日期", "解约日期", "服务包", "核实日期"], [
        [P1, "H33050200002", "织里一队", "2024-01-01", "", "", "2024-01-05"],
        [P2, "H33050200003", "中医一队", datetime.date(2025, 7, 15), None, None, datetime.date(2025, 7, 20)],
        [P3, "H33050200001", "人医一队", "2024-01-01", "", "", ""],  # never verified
    ]),
    ("registrations", "xlsx", ["身份证号", "病种编码", "备案日期", "终止日期"], [[P1, "I10", "2025-04-10", ""]]),
    ("outpatient_claims", "csv",
     ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"], [
        ["MZ001", P1, "H33050200002", "2025-02-10", "普通门诊", "", "400.00", "300.00", "100.00", "否"],
        ["MZ002", P1, "H33050200004", "2025-05-05", "慢病门诊", "I10", "260.00", "200.00", "60.00", "是"],
        ["MZ003", P1, "H33050200001", "2025-06-01", "特病门诊", "I10", "1200.00", "999.00", "201.00", "否"],
        ["MZ004", P3, "H33050200001", "2025-03-01", "普通门诊", "", "600.00", "500.00", "100.00", "否"],
        ["MZ005", P2, "H33050200003", "2025-03-03", "普通门诊", "", "800.00", "700.00", "100.00", "否"],
        ["MZ006", P2, "H33050200003", "2025-08-08", "普通门诊", "", "1800.00", "1500.00", "300.00", "否"],
        ["MZ007", P2, "H33050200004", "2025-09-09", "普通门诊", "", "1000.00", "800.00", "200.00", "否"],
    ]),
    ("capitation_standards", "xlsx", ["年度", "险种", "年龄段", "病种编码", "人头标准(元/人·年)"], [
        [2025, "居民", "60周岁及以下", "", "1200.00"],
        [2025, "居民", "60周岁以上", "", "2400.00"],
        [2025, "职工", "60周岁及以下", "", "1800.00"],
        [2025, "职工", "60周岁以上", "", "3600.00"],
        [2025, "居民", "60周岁及以下", "I10", "600.00"],
    ]),
    ("assessments", "xlsx", ["年度", "单位编码", "考核得分", "留用上浮(百分点)", "超支分担下调(百分点)"], [
        [2025, "YGT-A", "95.00", "5", "0"],
    ]),
    ("payments", "xlsx", ["年度", "月份", "方案", "单位编码", "拨付金额"], [[2025, 6, "capitation", "YGT-A", "100.00"]]),
]


def write_file(path, fmt, headers, rows):
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8-sig") as stream:
            writer = csv.writer(stream)
            writer.writerow(headers)
            writer.writerows(rows)
        return
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def import_all(tmp_path):
    for resource, fmt, headers, rows in FILES:
        path = tmp_path / f"{resource}.{fmt}"
        write_file(path, fmt, headers, rows)
        out = StringIO()
        call_command("import_data", resource, str(path), stdout=out)
    # Re-uploading a file changes nothing (business keys): the claims stay 7, not 14.
    call_command("import_data", "outpatient_claims", str(tmp_path / "outpatient_claims.csv"), stdout=StringIO())
    assert OutpatientClaim.objects.count() == 7


def figures(row):
    return [D(str(value)) for value in row[2:11]]


@pytest.mark.worker
def test_spreadsheets_to_statement_through_the_worker(celery_worker_process, tmp_path):
    import_all(tmp_path)
    # Imported standards wait for the city bureau's approval; a settlement reads approved ones only.
    assert set(CapitationStandard.objects.values_list("status", flat=True)) == {ApprovalStatus.DRAFT}
    assert approve_capitation_standards(CapitationStandard.objects.filter(year=YEAR)) == 5
    load_preset("huzhou", YEAR, approve=True)

    out = StringIO()
    call_command("settle", "capitation", "--year", str(YEAR), stdout=out)
    assert "已提交后台计算" in out.getvalue()  # handed to the worker, not computed in this process
    run = wait_for(
        lambda: SettlementRun.objects.filter(scheme="capitation", year=YEAR,
                                             status__in=[RunStatus.COMPUTED, RunStatus.FAILED]).first(),
        timeout=90, message="结算任务未在90秒内完成",
    )
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    assert (run.units_total, run.units_done) == (2, 2)

    xlsx = tmp_path / "capitation-2025.xlsx"
    call_command("export_settlement", "--year", str(YEAR), "--scheme", "capitation", "--output", str(xlsx),
                 stdout=StringIO())
    rows = [[cell.value for cell in row] for row in load_workbook(xlsx).active.iter_rows()]
    assert rows[0][:11] == HEADERS
    by_code = {row[0]: row for row in rows[1:]}
    assert sorted(by_code) == ["YGT-A", "YGT-B"]
    assert by_code["YGT-A"][1] == "吴兴区人民医院医共体"
    #                                  Q          A         S          unit       fund      E          paid  违规扣款 year-end
    assert figures(by_code["YGT-A"]) == [D("1650.00"), D("500.00"), D("1150.00"), D("1035.00"), D("115.00"),
                                         D("1535.00"), D("600.00"), D("0.00"), D("935.00")]
    assert figures(by_code["YGT-B"]) == [D("1800.00"), D("2300.00"), D("-500.00"), D("-425.00"), D("-75.00"),
                                         D("1875.00"), D("2300.00"), D("0.00"), D("-425.00")]

    # csv: the same figures as plain numbers with exactly two decimals; a refund is negative.
    csv_path = tmp_path / "capitation-2025.csv"
    call_command("export_settlement", "--year", str(YEAR), "--scheme", "capitation", "--output", str(csv_path),
                 stdout=StringIO())
    with open(csv_path, encoding="utf-8-sig", newline="") as stream:
        csv_rows = list(csv.reader(stream))
    assert csv_rows[0][:11] == HEADERS
    csv_by_code = {row[0]: row for row in csv_rows[1:]}
    assert csv_by_code["YGT-A"][2:11] == ["1650.00", "500.00", "1150.00", "1035.00", "115.00", "1535.00",
                                          "600.00", "0.00", "935.00"]
    assert csv_by_code["YGT-B"][2:11] == ["1800.00", "2300.00", "-500.00", "-425.00", "-75.00", "1875.00",
                                          "2300.00", "0.00", "-425.00"]
