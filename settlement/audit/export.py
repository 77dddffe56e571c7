"""The findings export of SPEC §9/§5: one row per finding, xlsx or csv."""
import csv
import io

from settlement.engine.export import export_format, safe_text

HEADERS = ["规则编码", "规则名称", "严重程度", "机构编码", "身份证号", "单据号", "涉及金额", "状态", "依据"]
AMOUNT = HEADERS.index("涉及金额")


def rows_of(queryset):
    for f in queryset.iterator(chunk_size=2000):
        yield [
            f.rule, f.rule_name, f.severity, f.institution.code if f.institution_id else "",
            f.person.id_number if f.person_id else "", f.document_serial, f.amount, f.status, f.evidence,
        ]


def write_csv(queryset, stream):
    writer = csv.writer(stream)
    writer.writerow(HEADERS)
    count = 0
    for row in rows_of(queryset):
        writer.writerow([f"{v:.2f}" if i == AMOUNT else safe_text(v) for i, v in enumerate(row)])
        count += 1
    return count


def write_xlsx(queryset, stream):
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("审核疑点")
    sheet.append(HEADERS)
    count = 0
    for row in rows_of(queryset):
        cells = []
        for index, value in enumerate(row):
            cell = WriteOnlyCell(sheet, value=value if index == AMOUNT else safe_text(value))
            if index == AMOUNT:
                cell.number_format = "0.00"
            else:
                cell.data_type = "s"  # IDs and serials stay text, never numbers that lose digits
            cells.append(cell)
        sheet.append(cells)
        count += 1
    workbook.save(stream)
    return count


def export_findings(queryset, path):
    """Write the findings to `path` (.xlsx or .csv); returns the number of rows."""
    if export_format(path) == "csv":
        with open(path, "w", newline="", encoding="utf-8-sig") as stream:
            return write_csv(queryset, stream)
    with open(path, "wb") as stream:
        return write_xlsx(queryset, stream)


def export_bytes(queryset, fmt="xlsx"):
    if fmt == "csv":
        text = io.StringIO()
        write_csv(queryset, text)
        return ("\ufeff" + text.getvalue()).encode("utf-8")
    buffer = io.BytesIO()
    write_xlsx(queryset, buffer)
    return buffer.getvalue()
