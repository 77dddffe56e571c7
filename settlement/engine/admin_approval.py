"""Confirmation pages before anything is approved (issue 18, finding 5: four eyes).

Every approval in the admin first shows what is about to be locked — a run's totals, a policy's or a
standard's values and who last changed them — and approves only on a second, explicit POST. The
rule itself (a second person) lives in the services (settlement/approval.py `require_four_eyes`), so
the command line and any other door obey it too; these pages only make the act deliberate.
"""
from django.db.models import Count, Sum
from django.template.response import TemplateResponse
from django.utils import timezone

from settlement.approval import last_changed_by

SKIPPED = {"id", "status", "approved_by", "approved_at", "version"}
CONFIRMED = "confirmed"


def confirmed(request):
    return request.method == "POST" and request.POST.get(CONFIRMED) == "yes"


def user_name(user):
    if user is None:
        return "系统"
    return user.get_full_name() or user.get_username()


def _shown(row, field):
    value = getattr(row, field.name)
    if value is None or value == "":
        return "—"
    if field.choices:
        return getattr(row, f"get_{field.name}_display")()
    if isinstance(value, dict):
        return "；".join(f"{k}={v}" for k, v in value.items()) or "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def row_item(row, authors):
    """What approving one row (policy, standard, benefit rule, …) locks: its fields and its author."""
    from django.contrib.auth import get_user_model

    lines = [(field.verbose_name, _shown(row, field)) for field in row._meta.concrete_fields
             if field.name not in SKIPPED and field.editable]
    author_id = authors.get(row.pk)
    author = get_user_model().objects.filter(pk=author_id).first() if author_id else None
    lines.append(("最后修改人", user_name(author)))
    return {"title": str(row), "lines": lines}


def rows_items(queryset):
    rows = list(queryset)
    authors = last_changed_by(queryset.model, [row.pk for row in rows])
    return [row_item(row, authors) for row in rows]


def run_totals(run):
    """The figures a run's approval locks: units and Σ 应得金额, Σ 已拨付, Σ 年终清算金额 of all its units."""
    figures = run.results.aggregate(units=Count("id"), entitled=Sum("entitled"), paid=Sum("paid"), amount=Sum("amount"))
    money = {name: figures[name] if figures[name] is not None else "0.00" for name in ("entitled", "paid", "amount")}
    finished = timezone.localtime(run.finished_at).strftime("%Y-%m-%d %H:%M") if run.finished_at else "—"
    return {"title": str(run), "lines": [
        ("状态", run.get_status_display()),
        ("结算单位数", figures["units"]),
        ("Σ 应得金额（元）", money["entitled"]),
        ("Σ 已拨付（元）", money["paid"]),
        ("Σ 年终清算金额（元）", money["amount"]),
        ("发起计算", user_name(run.created_by)),
        ("计算完成时间", finished),
    ]}


def confirmation(modeladmin, request, title, items, *, action=None, selected=(), action_url="", cancel_url=""):
    return TemplateResponse(request, "admin/portal/confirm_approval.html", {
        **modeladmin.admin_site.each_context(request), "title": title, "opts": modeladmin.model._meta,
        "items": items, "action": action, "selected": [str(pk) for pk in selected],
        "action_url": action_url, "cancel_url": cancel_url or request.get_full_path(),
    })
