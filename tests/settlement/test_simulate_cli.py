"""`simulate` (SPEC §5): the side-by-side table, exit status and one-line Chinese reasons."""
import csv
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from openpyxl import load_workbook

from settlement.engine import services
from settlement.engine.models import SettlementRun, UnitResult
from settlement.engine.simulation_models import Simulation
from tests.settlement.engine_data import policy
from tests.settlement.test_engine_cli import manage
from tests.settlement.test_engine_runs import build_two_alliances

D = Decimal
HEADERS = ["单位编码", "单位名称", "Q基准", "Q模拟", "Q差额", "A基准", "A模拟", "A差额", "E基准", "E模拟", "E差额",
           "年终清算金额基准", "年终清算金额模拟", "年终清算金额差额"]


@pytest.fixture
def settled(db):
    build_two_alliances()
    policy()
    return services.start_run("capitation", 2025, sync=True)


def test_simulate_writes_the_side_by_side_table_as_csv(settled, tmp_path):
    out = StringIO()
    target = tmp_path / "sim.csv"
    # NAME=VALUE words after the options, as `policy set` takes them.
    call_command("simulate", "capitation", "--year", "2025", "retention=0.80", "standards_factor=1.10",
                 "--output", str(target), stdout=out)
    with open(target, encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == HEADERS
    a = dict(zip(HEADERS, rows[1]))
    # A: Q 18 × 110.00 = 1,980.00; S = 1,180.00 × 80% = 944.00 → E 1,744.00, year-end 944.00
    assert (a["单位编码"], a["Q基准"], a["Q模拟"], a["Q差额"]) == ("YGT-A", "1800.00", "1980.00", "180.00")
    assert (a["E基准"], a["E模拟"], a["E差额"]) == ("1650.00", "1744.00", "94.00")
    assert (a["年终清算金额基准"], a["年终清算金额模拟"], a["年终清算金额差额"]) == ("850.00", "944.00", "94.00")
    b = dict(zip(HEADERS, rows[2]))
    # B: Q 12 × 220.00 = 2,640.00; S = −260.00 × 85% = −221.00 (base −425.00): +204.00
    assert (b["Q模拟"], b["年终清算金额模拟"], b["年终清算金额差额"]) == ("2640.00", "-221.00", "204.00")
    text = out.getvalue()
    assert "retention=0.80" in text and "standards_factor=1.10" in text
    # Σ E 1,650.00 + 2,475.00 = 4,125.00 → 1,744.00 + (2,900.00 − 221.00 = 2,679.00) = 4,423.00
    assert "基准 4,125.00，模拟 4,423.00，差额 298.00；增加2个单位，减少0个" in text
    assert Simulation.objects.get().changes == {"retention": "0.80"}
    # The base run is as it was.
    assert UnitResult.objects.get(run=settled, unit_code="YGT-A").amount == D("850.00")


def test_simulate_writes_xlsx(settled, tmp_path):
    target = tmp_path / "sim.xlsx"
    call_command("simulate", "capitation", "--year", "2025", "overspend_share=0.80", "--output", str(target),
                 stdout=StringIO())
    sheet = load_workbook(target).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == HEADERS
    b = dict(zip(HEADERS, rows[2]))
    # B: O 500.00 × 80% = 400.00 refunded instead of 425.00
    assert (b["年终清算金额基准"], b["年终清算金额模拟"], b["年终清算金额差额"]) == (-425, -400, 25)


@pytest.mark.parametrize("words, reason", [
    (["retention=1.5"], "参数“结余留用比例”（retention）不能大于1"),
    (["retention"], "参数应写成 NAME=VALUE"),
    (["speed=3"], "未知参数“speed”"),
    (["budget_factor=1.1"], "预算调整系数（budget_factor）不适用于门诊按人头付费"),
    (["standards_factor=x"], "应为数字"),
    (["standards_factor=1.1", "standards_factor=1.2"], "给出了不止一次"),
])
def test_simulate_refusals_land_nothing(settled, tmp_path, words, reason):
    target = tmp_path / "sim.csv"
    with pytest.raises(CommandError, match=reason):
        call_command("simulate", "capitation", "--year", "2025", *words, "--output", str(target), stdout=StringIO())
    assert not target.exists() and not Simulation.objects.exists()


@pytest.mark.django_db
def test_simulate_without_a_settled_run(tmp_path):
    build_two_alliances()
    with pytest.raises(CommandError, match="没有2025年度门诊按人头付费（全市）已计算的结算批次，请先运行 settle"):
        call_command("simulate", "capitation", "--year", "2025", "--output", str(tmp_path / "s.csv"))
    with pytest.raises(CommandError, match="未知的支付方案“capitaton”"):
        call_command("simulate", "capitaton", "--year", "2025", "--output", str(tmp_path / "s.csv"))
    assert not SettlementRun.objects.exists()


def test_simulate_exit_status_and_one_line_reason(tmp_path):
    result = manage("simulate", "capitation", "--year", "2025", "retention=0.8", "--output", str(tmp_path / "x.pdf"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "应以 .xlsx 或 .csv 结尾" in lines[0]
    assert not (tmp_path / "x.pdf").exists()
