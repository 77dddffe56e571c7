"""`settle` and `export_settlement` (SPEC §5): exit codes, one-line Chinese reasons, exported figures."""
import csv
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from openpyxl import load_workbook

from settlement.engine.models import RunStatus, SettlementRun, UnitResult
from tests.settlement.engine_data import policy
from tests.settlement.test_engine_runs import build_two_alliances

ROOT = Path(__file__).resolve().parents[2]
HEADERS = ["单位编码", "单位名称", "预算额度", "实际支出", "结余超支", "单位分担留用", "基金分担留用", "应得金额", "已拨付", "违规扣款", "年终清算金额"]


def manage(*args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )


def test_unknown_scheme_exits_non_zero_with_one_chinese_line():
    result = manage("settle", "capitaton", "--year", "2025", "--sync")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "未知的支付方案“capitaton”" in lines[0]


def test_export_refuses_an_unknown_format_without_writing(tmp_path):
    result = manage("export_settlement", "--year", "2025", "--scheme", "capitation", "--output", str(tmp_path / "x.pdf"))
    assert result.returncode != 0 and "应以 .xlsx 或 .csv 结尾" in result.stderr
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, reason",
    [
        (["settle", "capitation", "--year", "abcd", "--sync"], "年度“abcd”无效"),
        (["settle", "capitation", "--year", "1899", "--sync"], "年度“1899”无效"),
        (["settle", "capitation", "--year", "2025", "--region", "999999", "--sync"], "区划代码“999999”不存在"),
        (["settle", "capitation", "--year", "2025", "--sync"], "未找到2025年度门诊按人头付费（全市）的支付政策"),
    ],
)
def test_settle_refusals(args, reason):
    build_two_alliances()
    with pytest.raises(CommandError, match=reason):
        call_command(*args)
    assert not SettlementRun.objects.exists()


@pytest.mark.django_db
def test_export_without_a_computed_run_is_refused(tmp_path):
    with pytest.raises(CommandError, match="没有2025年度capitation（全市）已计算的结算批次"):
        call_command("export_settlement", "--year", "2025", "--scheme", "capitation", "--output", str(tmp_path / "o.csv"))


@pytest.mark.django_db
def test_settle_then_export_csv_and_xlsx(tmp_path, capsys):
    build_two_alliances()
    policy()
    call_command("settle", "capitation", "--year", "2025", "--sync")
    assert "已计算：2个单位" in capsys.readouterr().out
    # a unit named like a formula is neutralised, numbers stay numbers
    UnitResult.objects.filter(unit_code="YGT-B").update(unit_name="=HYPERLINK(\"x\")")

    out_csv = tmp_path / "o.csv"
    call_command("export_settlement", "--year", "2025", "--scheme", "capitation", "--output", str(out_csv))
    with open(out_csv, encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == HEADERS
    # hand-worked in test_engine_runs.build_two_alliances
    assert rows[1][0] == "YGT-A" and rows[1][2:] == ["1800.00", "800.00", "1000.00", "850.00", "150.00", "1650.00", "800.00", "0.00", "850.00"]
    assert rows[2][1] == "'=HYPERLINK(\"x\")"
    assert rows[2][2:] == ["2400.00", "2900.00", "-500.00", "-425.00", "-75.00", "2475.00", "2900.00", "0.00", "-425.00"]

    out_xlsx = tmp_path / "o.xlsx"
    call_command("export_settlement", "--year", "2025", "--scheme", "capitation", "--output", str(out_xlsx))
    sheet = load_workbook(out_xlsx).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == HEADERS
    assert values[1][0] == "YGT-A" and Decimal(str(values[1][10])) == Decimal("850.00")
    assert Decimal(str(values[2][5])) == Decimal("-425.00")
    assert sheet.cell(row=2, column=3).number_format == "0.00"

    # The export trail has both command-line exports, two unit rows each (issue 18, finding 8).
    from alliances.models import ExportRecord

    records = list(ExportRecord.objects.order_by("pk").values_list("user", "channel", "rows", "file_name", "filters"))
    assert records == [
        (None, "命令行导出", 2, "o.csv", "年度=2025；方案=capitation；区划=全市；版本=1"),
        (None, "命令行导出", 2, "o.xlsx", "年度=2025；方案=capitation；区划=全市；版本=1"),
    ]


@pytest.mark.django_db
def test_settle_reports_a_failed_run(capsys):
    from tests import factories
    from tests.settlement.engine_data import d

    county = factories.region()
    inst = factories.institution(county=county)
    factories.alliance(lead=inst)
    factories.contract(factories.person(county), inst, d("2024-01-01"), verified_on=d("2024-01-02"))
    policy()
    with pytest.raises(CommandError, match="计算失败：数据汇总失败：2025年度缺少已审批的普通门诊人头标准"):
        call_command("settle", "capitation", "--year", "2025", "--sync")
    assert SettlementRun.objects.get().status == RunStatus.FAILED
