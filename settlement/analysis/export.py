"""The DRG institution table (SPEC §10): `drg_report` writes it, the 运行分析 page exports it as xlsx.

Headers are a public interface, exactly as SPEC §10 writes them. Ratios are plain decimals with four
places (入组率 and the mortality as fractions, not percentages), 结算盈亏 has two, counts none; a ratio
that has no cases to stand on (no low-risk cases, no grouped cases, no run for 结算盈亏) is empty.
"""
import csv
import io
from pathlib import Path

from settlement.engine.export import safe_text

HEADERS = [
    "机构编码", "机构名称", "病例数", "DRG组数", "入组率", "CMI", "费用消耗指数", "时间消耗指数", "低风险组死亡率",
    "高倍率病例数", "低倍率病例数", "结算盈亏",
]
RATIOS = {"入组率", "CMI", "费用消耗指数", "时间消耗指数", "低风险组死亡率"}
MONEY = {"结算盈亏"}


def row_values(code, name, item):
    """The cells of one row in HEADERS order; `item` is an analysis.drg.Indices."""
    return [
        code, name, item.cases, item.groups, item.grouping_rate, item.cmi, item.cost_index, item.time_index,
        item.low_risk_mortality, item.high_cases, item.low_cases, item.balance,
    ]


def _text(header, value):
    if value is None:
        return ""
    if header in RATIOS:
        return f"{value:.4f}"
    if header in MONEY:
        return f"{value:.2f}"
    if header in ("机构编码", "机构名称"):
        return safe_text(value)
    return str(value)


def write_csv(rows, stream):
    writer = csv.writer(stream)
    writer.writerow(HEADERS)
    for row in rows:
        writer.writerow([_text(h, v) for h, v in zip(HEADERS, row)])


def write_xlsx(rows, stream, sheet_name="DRG运行分析"):
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    sheet.append(HEADERS)
    for row in rows:
        cells = []
        for header, value in zip(HEADERS, row):
            if header in ("机构编码", "机构名称"):
                cell = WriteOnlyCell(sheet, value=safe_text(value))
                cell.data_type = "s"
            else:
                cell = WriteOnlyCell(sheet, value=value)
                if header in RATIOS:
                    cell.number_format = "0.0000"
                elif header in MONEY:
                    cell.number_format = "0.00"
            cells.append(cell)
        sheet.append(cells)
    workbook.save(stream)


def report_format(path):
    suffix = Path(str(path)).suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise ValueError(f"输出文件“{path}”应以 .xlsx 或 .csv 结尾")
    return suffix[1:]


def write_report(rows, path):
    """Write the rows to `path` (.xlsx or .csv, utf-8 with BOM so Excel reads the Chinese)."""
    if report_format(path) == "csv":
        with open(path, "w", newline="", encoding="utf-8-sig") as stream:
            write_csv(rows, stream)
    else:
        with open(path, "wb") as stream:
            write_xlsx(rows, stream)


def xlsx_bytes(rows):
    buffer = io.BytesIO()
    write_xlsx(rows, buffer)
    return buffer.getvalue()
