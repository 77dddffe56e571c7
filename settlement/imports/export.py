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
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(str(resource.title)[:31])
    for row in rows(resource, queryset):
        sheet.append(row)
    workbook.save(target)


def write_csv(resource, queryset, target):
    """UTF-8 with BOM so that Excel opens the Chinese headers correctly."""
    target.write("\ufeff")
    writer = csv.writer(target)
    for row in rows(resource, queryset):
        writer.writerow(["" if value is None else str(value) for value in row])


def write_template(resource, target):
    """Empty workbook with the headers and one example row; the ID columns are formatted as text."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "导入模板"
    sheet.append(resource.headers)
    sheet.append([column.example for column in resource.columns])
    for index, column in enumerate(resource.columns, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(12, len(column.header) * 2 + 4)
        # Text format stops Excel from turning IDs and serials into numbers that lose digits.
        for cell in sheet[letter]:
            cell.number_format = "@"
    workbook.save(target)
