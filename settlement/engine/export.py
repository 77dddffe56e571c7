"""The settlement export of SPEC §5: one row per settled unit, xlsx or csv."""
import csv
import io
from pathlib import Path

from alliances.export_trail import COMMAND_LINE, SETTLEMENT, record_export
from alliances.scope import restrict
from settlement.approval import Refused

from .models import SettlementRun

COLUMNS = [
    ("单位编码", "unit_code"),
    ("单位名称", "unit_name"),
    ("预算额度", "quota"),
    ("实际支出", "actual"),
    ("结余超支", "surplus"),
    ("单位分担留用", "unit_part"),
    ("基金分担留用", "fund_part"),
    ("应得金额", "entitled"),
    ("已拨付", "paid"),
    ("违规扣款", "recovery"),
    ("年终清算金额", "amount"),
]
TEXT_FIELDS = {"unit_code", "unit_name"}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value):
    """A text cell a spreadsheet must not execute (CSV/formula injection)."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def require_run(run):
    if not isinstance(run, SettlementRun):
        # A simulation moves no money: it is never written out as a settlement (SPEC §11).
        raise Refused(f"“{run}”不是结算批次，不能作为结算结果导出")


def rows_of(run, user=None):
    results = run.results.order_by("unit_code")
    if user is not None:
        results = restrict(results, user)
    for result in results:
        yield [safe_text(getattr(result, f)) if f in TEXT_FIELDS else getattr(result, f) for _, f in COLUMNS]


def export_format(path):
    suffix = Path(str(path)).suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise ValueError(f"输出文件“{path}”应以 .xlsx 或 .csv 结尾")
    return suffix[1:]


def write_money_csv(stream, headers, rows):
    """A table of (code, name, money…) rows: the money as plain numbers with exactly two decimals."""
    writer = csv.writer(stream)
    writer.writerow(headers)
    count = 0
    for row in rows:
        writer.writerow([*row[:2], *(f"{value:.2f}" for value in row[2:])])
        count += 1
    return count


def write_money_xlsx(stream, title, headers, rows, number_format="0.00"):
    """The same table as one xlsx sheet: code and name as text (18-digit codes stay whole), money as numbers."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    sheet.append(headers)
    count = 0
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            cell = WriteOnlyCell(sheet, value=value)
            if index >= 2:
                cell.number_format = number_format
            else:
                cell.data_type = "s"
            cells.append(cell)
        sheet.append(cells)
        count += 1
    workbook.save(stream)
    return count


def write_csv(run, stream, user=None):
    return write_money_csv(stream, [header for header, _ in COLUMNS], rows_of(run, user))


def write_xlsx(run, stream, user=None):
    return write_money_xlsx(stream, "结算结果", [header for header, _ in COLUMNS], rows_of(run, user))


def _trail(run, user, channel, count, file_name):
    record_export(user, channel=channel, resource=f"settlement_{run.scheme}", title=str(run), rows=count,
                  filters=f"年度={run.year}；方案={run.scheme}；区划={run.region_code or '全市'}；版本={run.version}",
                  file_name=file_name)


def export_run(run, path, user=None):
    """Write `run` to `path` (.xlsx or .csv); returns the number of unit rows."""
    require_run(run)
    fmt = export_format(path)
    if fmt == "csv":
        # utf-8-sig so that Excel opens the Chinese headers correctly.
        with open(path, "w", newline="", encoding="utf-8-sig") as stream:
            count = write_csv(run, stream, user)
    else:
        with open(path, "wb") as stream:
            count = write_xlsx(run, stream, user)
    _trail(run, user, COMMAND_LINE if user is None else SETTLEMENT, count, Path(str(path)).name)
    return count


def export_bytes(run, fmt="xlsx", user=None, file_name=""):
    require_run(run)
    if fmt == "csv":
        text = io.StringIO()
        count = write_csv(run, text, user)
        content = ("\ufeff" + text.getvalue()).encode("utf-8")
    else:
        buffer = io.BytesIO()
        count = write_xlsx(run, buffer, user)
        content = buffer.getvalue()
    _trail(run, user, SETTLEMENT, count, file_name)
    return content
