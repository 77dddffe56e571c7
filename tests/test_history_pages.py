"""The change history as an auditor reads it (issue 18, finding 6), on the shared history page."""
import datetime
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from settlement.engine.presets import approve_policy
from tests.settlement.engine_data import policy

pytestmark = pytest.mark.django_db


def test_policy_history_reads_in_chinese_local_time_and_in_full(client, make_user):
    approver = make_user("city")
    approver.first_name, approver.last_name = "审核", "王"
    approver.save()
    row = policy(approved=False)
    row.parameters = {**row.parameters, "retention": "0.80"}  # nine parameters: far over 120 characters
    row._change_reason = "按市局通知调整留用比例"
    row.save()
    approve_policy(row, approver)
    client.force_login(make_user("auditor"))
    page = client.get(reverse("admin:settlement_paymentpolicy_history", args=[row.pk])).content.decode()
    for header in ("时间（北京时间）", "操作人", "修改原因", "变更内容"):
        assert f'<th scope="col">{header}</th>' in page
    assert "CHANGES" not in page and ">Changes<" not in page
    # Choices by label, users by name, no "None" and no "Deleted 用户 (pk=None)".
    assert "<strong>状态：</strong>草稿&nbsp;&rarr;&nbsp;已审批" in page
    assert f"<strong>审批人：</strong>—&nbsp;&rarr;&nbsp;{approver.get_full_name()}" in page
    assert "None" not in page and "Deleted" not in page and "pk=None" not in page
    assert "<td>按市局通知调整留用比例</td>" in page
    # Times in Asia/Shanghai, never the stored UTC with its offset.
    approved_at = timezone.localtime(type(row).objects.get(pk=row.pk).approved_at)
    assert approved_at.strftime("%Y-%m-%d %H:%M:%S") in page
    assert "+00:00" not in page
    # A long value is folded but readable in full, not cut to "[… chars]".
    full = escape(json.dumps(row.parameters, ensure_ascii=False, sort_keys=True))
    assert len(full) > 200 and full in page and "展开全文" in page
    assert not re.search(r"\[\d+ chars\]", page)


def test_budget_application_step_captions_are_in_local_time():
    from alliances.budget_models import BudgetWorkflowStep

    step = BudgetWorkflowStep(acted_at=datetime.datetime(2026, 12, 2, 19, 56, tzinfo=datetime.timezone.utc),
                              action=BudgetWorkflowStep._meta.get_field("action").choices[0][0])
    assert str(step).startswith("2026-12-03 03:56 ")  # 19:56 UTC is 03:56 the next day in Asia/Shanghai
