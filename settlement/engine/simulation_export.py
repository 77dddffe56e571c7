"""The side-by-side table of a simulation (SPEC §5 `simulate`): one row per unit with 单位编码, 单位名称,
then each of Q, A, E, 年终清算金额 as 基准 / 模拟 / 差额 columns; xlsx or csv.

The page's export adds S and the unit's part after those (the figures the result page shows).
"""
import csv
import io

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from .export import export_format, safe_text
from .simulation import visible_units

KINDS = ("基准", "模拟", "差额")
FIGURES = [("Q", "quota"), ("A", "actual"), ("E", "entitled"), ("年终清算金额", "amount")]
EXTRA_FIGURES = [("S", "surplus"), ("单位分担留用", "unit_part")]


def headers(extended=False):
    figures = FIGURES + (EXTRA_FIGURES if extended else [])
    return ["单位编码", "单位名称"] + [f"{label}{kind}" for label, _ in figures for kind in KINDS]


def rows_of(simulation, user=None, extended=False):
    figures = FIGURES + (EXTRA_FIGURES if extended else [])
    for unit in visible_units(simulation, user):
        row = [safe_text(unit.unit_code), safe_text(unit.unit_name)]
        for _, field in figures:
            row += [getattr(unit, f"base_{field}"), getattr(unit, field), unit.difference(field)]
        yield row


def write_csv(simulation, stream, user=None, extended=False):
    writer = csv.writer(stream)
    writer.writerow(headers(extended))
    count = 0
    for row in rows_of(simulation, user, extended):
        writer.writerow(row[:2] + [f"{value:.2f}" for value in row[2:]])
        count += 1
    return count


def write_xlsx(simulation, stream, user=None, extended=False):
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("政策模拟")
    sheet.append(headers(extended))
    count = 0
    for row in rows_of(simulation, user, extended):
        cells = []
        for index, value in enumerate(row):
            cell = WriteOnlyCell(sheet, value=value)
            if index >= 2:
                cell.number_format = "#,##0.00"
            else:
                cell.data_type = "s"
            cells.append(cell)
        sheet.append(cells)
        count += 1
    workbook.save(stream)
    return count


def export_simulation(simulation, path, user=None):
    """Write the side-by-side table to `path` (.xlsx or .csv); returns the number of unit rows."""
    fmt = export_format(path)
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8-sig") as stream:
            return write_csv(simulation, stream, user)
    with open(path, "wb") as stream:
        return write_xlsx(simulation, stream, user)


def simulation_bytes(simulation, fmt="xlsx", user=None, extended=True):
    if fmt == "csv":
        text = io.StringIO()
        write_csv(simulation, text, user, extended)
        return ("\ufeff" + text.getvalue()).encode("utf-8")
    buffer = io.BytesIO()
    write_xlsx(simulation, buffer, user, extended)
    return buffer.getvalue()
