"""`drg_report` (SPEC §5, §10): exact headers, 4-decimal fractions, exit status and one-line reasons."""
import csv

import pytest
from django.core.management import CommandError, call_command
from openpyxl import load_workbook

from alliances.models import InstitutionLevel
from tests import factories
from tests.settlement.inpatient_builders import case, group

HEADERS = ["机构编码", "机构名称", "病例数", "DRG组数", "入组率", "CMI", "费用消耗指数", "时间消耗指数", "低风险组死亡率",
           "高倍率病例数", "低倍率病例数", "结算盈亏"]


@pytest.fixture
def two_counties(county, other_county):
    a = factories.institution(county=county, level=InstitutionLevel.SECONDARY, name="=HYPERLINK(1)")
    b = factories.institution(county=other_county, level=InstitutionLevel.SECONDARY)
    group("G1", "100.0000", "10000.00")
    group("G2", "300.0000", "20000.00")
    p = factories.person()
    case(a, p, "2025-01-01", "2025-01-05", drg="G1", total="8000.00")
    case(a, p, "2025-02-01", "2025-02-05", drg="G2", total="20000.00")
    case(a, p, "2025-03-01", "2025-03-05", drg="XX1", total="1000.00")
    case(b, p, "2025-04-01", "2025-04-05", drg="G1", total="12000.00")
    return a, b


def read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as stream:
        return list(csv.reader(stream))


def test_csv_has_the_spec_headers_and_plain_fractions(two_counties, tmp_path):
    a, b = two_counties
    out = tmp_path / "drg.csv"
    call_command("drg_report", "--year", "2025", "--output", str(out))
    rows = read_csv(out)
    assert rows[0] == HEADERS
    body = {row[0]: row for row in rows[1:]}
    # A: 3 cases, 2 grouped → 入组率 0.6667; CMI (1 + 3)/2 = 2.0000; cost (8000/10000 + 20000/20000)/2 = 0.9000;
    # every stay 4 days → time 1.0000; nobody died, no low-risk group → empty; no run → 结算盈亏 empty.
    # The name starting with "=" is written as text, not as a formula.
    assert body[a.code] == [a.code, "'=HYPERLINK(1)", "3", "2", "0.6667", "2.0000", "0.9000", "1.0000", "", "0", "0", ""]
    # B: G1 12000 against the city mean (8000 + 12000)/2 = 10000 → 1.2000
    assert body[b.code][2:8] == ["1", "1", "1.0000", "1.0000", "1.2000", "1.0000"]


def test_xlsx_and_region_filter(two_counties, tmp_path, county):
    a, b = two_counties
    out = tmp_path / "drg.xlsx"
    call_command("drg_report", "--year", "2025", "--region", county.code, "--output", str(out))
    sheet = load_workbook(out).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == HEADERS
    assert [row[0] for row in rows[1:]] == [a.code]  # B is in the other county
    assert rows[1][4] == pytest.approx(0.6667) and sheet.cell(2, 5).number_format == "0.0000"


@pytest.mark.parametrize("args, reason", [
    (["--year", "20x5", "--output", "x.csv"], "年度“20x5”无效"),
    (["--year", "2025", "--output", "x.txt"], "应以 .xlsx 或 .csv 结尾"),
    (["--year", "2025", "--region", "999999", "--output", "x.csv"], "区划代码“999999”不存在"),
    (["--year", "2024", "--output", "x.csv"], "没有2024年度按DRG付费的住院病例"),
])
def test_bad_input_exits_with_one_line_chinese_reason(two_counties, tmp_path, args, reason):
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    with pytest.raises(CommandError) as error:
        call_command("drg_report", *args)
    assert reason in str(error.value) and "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_unwritable_output_is_a_clear_error(two_counties, tmp_path):
    with pytest.raises(CommandError, match="无法写入输出文件"):
        call_command("drg_report", "--year", "2025", "--output", str(tmp_path / "missing" / "drg.csv"))
