"""The change history as an auditor reads it (issue 18, finding 6), for every model with history.

ScopedAdmin (the base of every portal admin) mixes `AuditHistoryMixin` in, and the project's
templates/simple_history/object_history_list.html replaces the package's list: Chinese headers and
field labels, choices by their label, users by name, times in Asia/Shanghai, the change reason only
when there is one, and long values folded but readable in full instead of "[2130 chars]".
"""
import datetime
import json

from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone
from django.utils.html import format_html
from simple_history.models import DeletedObject
from simple_history.template_utils import HistoricalRecordContextHelper

FOLD_AFTER = 120  # characters shown before a value is folded into 展开全文
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

HISTORY_TYPES = {"+": "新增", "~": "修改", "-": "删除"}


def user_name(user):
    if user is None:
        return "系统"
    return user.get_full_name() or user.get_username()


def local_time(value):
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime(TIME_FORMAT)


def display_value(field, value):
    """One stored value as the form would show it, in Chinese."""
    if isinstance(value, DeletedObject):
        if value.pk is None:
            return "—"
        return f"已删除的{value.model._meta.verbose_name}（编号{value.pk}）"
    if value is None or value == "":
        return "—"
    if isinstance(value, get_user_model()):
        return user_name(value)
    if isinstance(value, models.Model):
        return str(value)
    if getattr(field, "choices", None):
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime.datetime):
        return local_time(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def folded(text):
    """Escaped HTML: the value in full, folded behind its beginning when it is long."""
    if len(text) <= FOLD_AFTER:
        return format_html("{}", text)
    return format_html(
        '<details class="history-value"><summary>{}…（共{}字，展开全文）</summary>'
        '<div style="white-space:pre-wrap;word-break:break-all">{}</div></details>',
        text[:FOLD_AFTER], len(text), text,
    )


class AuditHistoryHelper(HistoricalRecordContextHelper):
    def prepare_delta_change_value(self, change, value):
        field = self.model._meta.get_field(change.field)
        if isinstance(value, list) and isinstance(field, models.ManyToManyField):
            return "、".join(str(v) for v in super().prepare_delta_change_value(change, value)) or "—"
        return display_value(field, value)

    def stringify_delta_change_values(self, change, old, new):
        return folded(old), folded(new)


class AuditHistoryMixin:
    """For SimpleHistoryAdmin subclasses: deltas and rows of the history page in an auditor's terms."""

    def get_historical_record_context_helper(self, request, historical_record):
        return AuditHistoryHelper(self.model, historical_record)

    def history_view_title(self, request, obj):
        return f"变更记录：{obj}"

    def set_history_delta_changes(self, request, historical_records, foreign_keys_are_objs=True):
        super().set_history_delta_changes(request, historical_records, foreign_keys_are_objs)
        for record in historical_records:
            record.audit_time = local_time(record.history_date)
            record.audit_type = HISTORY_TYPES.get(record.history_type, record.history_type)
            record.audit_user = user_name(record.history_user) if record.history_user_id else "系统"
            record.audit_reason = record.history_change_reason or ""
