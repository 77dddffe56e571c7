"""The export trail (issue 18, finding 8): every export and every download of a result file writes
one ExportRecord, so an auditor can tell who took which persons' data, when, and with which filter.

Called by each door that hands out a file (the admin's exports and error lists, the settlement
export of the admin and the command line); the record is written in the same request, before the
file leaves. Reading it is scoped in its admin: auditors and the city bureau see every record,
everybody else at most their own.
"""
from urllib.parse import unquote_plus

from .models import ExportRecord

ADMIN_EXPORT, ERROR_LIST, SETTLEMENT, COMMAND_LINE = "后台导出", "错误清单下载", "结算结果导出", "命令行导出"


def describe_filters(params):
    """A query string's filters as an auditor reads them: `name=value` pairs joined by ；."""
    pairs = [(key, value) for key, values in params.lists() for value in values if key not in ("_format", "o", "p")]
    return "；".join(f"{key}={unquote_plus(value)}" for key, value in pairs) or "（无筛选）"


def record_export(user, *, channel, resource, title, rows, filters="", file_name=""):
    return ExportRecord.objects.create(
        user=user if user is not None and user.pk else None, channel=channel, resource=resource,
        title=str(title)[:100], rows=rows, filters=filters, file_name=file_name[:200],
    )
