"""Export a (scoped, filtered) queryset with the import headers, so an export can be re-imported."""
import csv
import datetime
from decimal import Decimal

from .services import neutralise


def _paths(resource):
    return [column.export or column.name for column in resource.columns]


def _paths_for(resource):
    paths = _paths(resource)
    model_fields = {f.name: f for f in resource.model._meta.get_fields()}
    resolved = []
    for path in paths:
        field = model_fields.get(path)
        if field is not None and field.is_relation:
            path = f"{path}__code"
        resolved.append(path)
    return resolved


def rows(resource, queryset):
    """Header row, then one row per object in the import format (yes/no as 是/否, dates as text)."""
    yield resource.headers
    for values in queryset.order_by("pk").values_list(*_paths_for(resource)).iterator(chunk_size=5000):
        yield [_cell(value) for value in values]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return value
    return neutralise(value) if isinstance(value, str) else value


def write_xlsx(resource, queryset, target):
    """Returns the number of data rows written (the export trail records it)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(str(resource.title)[:31])
    count = -1  # the header row
    for row in rows(resource, queryset):
        sheet.append(row)
        count += 1
    workbook.save(target)
    return count


def write_csv(resource, queryset, target):
    """UTF-8 with BOM so that Excel opens the Chinese headers correctly; returns the data rows written."""
    target.write("\ufeff")
    writer = csv.writer(target)
    count = -1
    for row in rows(resource, queryset):
        writer.writerow(["" if value is None else str(value) for value in row])
        count += 1
    return count


TEMPLATE_NOTE = ("第一个工作表“导入模板”只填真实数据，从第2行起每行一条；本表的示例仅作填写参考，"
                 "不要复制到“导入模板”表（导入时只读取第一个工作表）。带*的列为必填。")


def write_template(resource, target):
    """A workbook whose first sheet has the headers only (ID columns formatted as text), and a 说明
    sheet with each column's example: the example is never a data row, so it cannot land."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "导入模板"
    sheet.append(resource.headers)
    for index, column in enumerate(resource.columns, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(12, len(column.header) * 2 + 4)
        # Text format (the whole column, so the rows the user types get it too) stops Excel from turning
        # IDs and serials into numbers that lose digits.
        sheet.column_dimensions[letter].number_format = "@"
        sheet.cell(row=1, column=index).number_format = "@"
    notes = workbook.create_sheet("说明")
    notes.append([TEMPLATE_NOTE])
    notes.append(["列名", "是否必填", "示例（仅供参考，不会导入）"])
    for column in resource.columns:
        notes.append([f"{column.header}{'*' if column.required else ''}", "必填" if column.required else "选填",
                      str(column.example) if column.example not in ("", None) else ""])
    notes.column_dimensions["A"].width = 24
    notes.column_dimensions["C"].width = 30
    workbook.save(target)
