"""What a clerk reads on a run, a unit result and a 清算单: Chinese labels, formatted money, and
figures that reconcile (issue 12; issue 18, finding 2).

Every figure shown is either the sum of the rows shown under it, or it says how it is rounded:
a table that explains a figure ends with 合计 (Σ of its rows as shown), a 尾差 line when the figure
was rounded once from the unrounded sum, and the figure itself. Nothing here computes money; it
only arranges the figures the run stored.
"""
import dataclasses
import re
from decimal import Decimal, InvalidOperation

from alliances.formatting import figure, money
from settlement.audit import recovery
from settlement.models import Scheme

from .base import get_rule, registered_schemes

# Labels of the intermediates every scheme may store; a scheme adds its own via `detail_labels`.
DETAIL_LABELS = {
    "heads": "人头数",
    "person_months": "人·月数",
    "payments": "拨付记录合计（元）",
}
COLUMN_LABELS = {
    "insurance_type": "险种", "age_band": "年龄段", "disease_code": "病种编码", "disease_name": "病种名称",
    "heads": "人头数", "person_months": "人·月", "counted_person_months": "计入人·月",
    "standard": "标准（元/人·年）", "quota": "额度（元）", "cases": "病例数", "days": "床日数",
    "quota_per_day": "床日标准（元/日）", "amount": "床日付费金额（元）", "exited_cases": "退出病例数",
    "standard_payment": "按标准支付（元）", "exited_fund_paid": "退出病例按原方式支付（元）",
    "fund_paid": "统筹支付（元）",
}
# Column order of stored rows (PostgreSQL's jsonb keeps its own key order, not the scheme's).
COLUMN_ORDER = list(COLUMN_LABELS)
# What the first column of a table stored as {key: {column: value}} holds.
KEY_COLUMN_LABELS = {"by_category": "床日类别", "by_disease": "病种编码"}
# Figures in yuan: shown as money wherever they appear in details.
MONEY_KEYS = {
    "quota", "standard", "amount", "quota_per_day", "standard_payment", "exited_fund_paid", "fund_paid",
    "total_cost", "pool_budget", "pool_personal_paid", "personal_paid", "quota_base", "quota_diseases",
    "actual_inside", "actual_outside", "payments", "paid_as_claims",
    "职工预算", "居民预算", "质量保证金", "扣留保证金", "扣除后预算", "年中预付额", "实际人头标准合计",
    "风险调整后标准合计", "计划风险调整后标准合计", "计划定额", "超支分担区间上限",
}

FIGURES = [
    ("quota", "预算额度（Q）"), ("actual", "实际支出（A）"), ("surplus", "结余超支（S = Q − A）"),
    ("unit_part", "单位分担留用"), ("fund_part", "基金分担留用（S − 单位分担留用）"), ("entitled", "应得金额（E）"),
    ("paid", "已拨付"), ("recovery", "违规扣款"), ("amount", "年终清算金额（E − 已拨付 − 违规扣款）"),
]
RECOVERY_NOTE = "计算时已确认违规的疑点涉及金额合计，明细见“违规扣款明细”"
FIGURE_LABELS = dict(FIGURES)
ROUNDING = "尾差（合计后一次四舍五入）"


def _decimal(value):
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


# --- parameters ------------------------------------------------------------------------------


def _choice_labels():
    labels = {}
    for rule in registered_schemes().values():
        for field in dataclasses.fields(rule.params_class):
            labels.update(field.metadata.get("choice_labels") or {})
    return labels


def value_label(value):
    """A stored code (add_all, tiered, …) by the Chinese label its parameter schema gives it."""
    if isinstance(value, str):
        return _choice_labels().get(value, value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def scheme_label(scheme):
    return dict(Scheme.choices).get(scheme, scheme)


def parameter_rows(scheme, parameters):
    """(label, value) for every parameter of a policy or a run's snapshot, in the schema's order."""
    try:
        params_class = get_rule(scheme).params_class
    except KeyError:
        return [(str(k), str(v)) for k, v in (parameters or {}).items()]
    rows = []
    stored = parameters or {}
    for field in dataclasses.fields(params_class):
        if field.name not in stored:
            continue
        rows.append((field.metadata.get("label") or field.name, _parameter_text(stored[field.name])))
    return rows


def _parameter_text(value):
    if isinstance(value, (list, tuple)):
        return "、".join(str(value_label(v)) for v in value) or "—"
    if isinstance(value, dict):
        return "；".join(f"{value_label(k)}：{_parameter_text(v)}" for k, v in value.items()) or "—"
    if value is None or value == "":
        return "—"
    shown = value_label(value)
    return figure(shown) if isinstance(shown, (int, Decimal)) and not isinstance(shown, bool) else str(shown)


# --- a unit's details ------------------------------------------------------------------------


def _cell(column, value):
    if value is None or value == "":
        return "—"
    if column in MONEY_KEYS:
        return money(value)
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return figure(value)
    return str(value_label(value))


def _ordered(columns):
    return sorted(columns, key=lambda c: COLUMN_ORDER.index(c) if c in COLUMN_ORDER else len(COLUMN_ORDER))


def _table_rows(value, key):
    """Stored rows as (columns, [dict]) for a list of dicts or a {key: {column: value}} mapping."""
    if isinstance(value, list):
        columns = _ordered({c for row in value for c in row})
        return columns, value
    first = KEY_COLUMN_LABELS.get(key, "项目")
    rows = [{first: k, **v} for k, v in value.items()]
    columns = [first] + _ordered({c for v in value.values() for c in v})
    return columns, rows


def _is_table(value):
    if isinstance(value, list):
        return bool(value) and isinstance(value[0], dict)
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _sum(rows, column):
    return sum((_decimal(r.get(column)) or Decimal("0") for r in rows), Decimal("0"))


def _target(result, name):
    if name.startswith("@"):
        return getattr(result, name[1:]), FIGURE_LABELS.get(name[1:], name[1:])
    return _decimal((result.details or {}).get(name)), None


def detail_rows(result):
    """(label, value or table) for every stored intermediate of a unit result, in Chinese.

    A table the scheme names in `detail_totals` ends with its 合计, a 尾差 line when the figure it
    explains was rounded once, and that figure; the figure is then not repeated as a line of its own.
    """
    rule = get_rule(result.run.scheme)
    labels = {**DETAIL_LABELS, **rule.detail_labels}
    details = result.details or {}
    explained = {total for _c, total, _n in rule.detail_totals.values() if not total.startswith("@")}
    order = list(rule.detail_labels)
    keys = sorted(details, key=lambda k: order.index(k) if k in order else len(order))
    rows = []
    for key in keys:
        if key in explained:
            continue
        value = details[key]
        label = labels.get(key, key)
        if _is_table(value):
            columns, stored = _table_rows(value, key)
            table = {
                "headers": [COLUMN_LABELS.get(c, c) for c in columns],
                "rows": [[{"text": _cell(c, r.get(c)), "money": c in MONEY_KEYS} for c in columns] for r in stored],
                "footer": [],
            }
            if key in rule.detail_totals:
                table["footer"] = _footer(result, rule, key, columns, stored, labels)
            rows.append({"label": label, "table": table})
        elif isinstance(value, dict):
            rows.append({"label": label, "value": "；".join(f"{k}：{_cell(key, v)}" for k, v in value.items()) or "—"})
        elif isinstance(value, list):
            rows.append({"label": label, "value": "、".join(str(value_label(v)) for v in value) or "—"})
        else:
            rows.append({"label": label, "value": _cell(key, value)})
    return rows


def _footer(result, rule, key, columns, stored, labels):
    """合计 / 尾差 / the figure explained, each as (label, columns before, amount text, columns after)."""
    column, total_name, note = rule.detail_totals[key]
    index, after = columns.index(column), len(columns) - columns.index(column) - 1
    shown = _sum(stored, column)
    total, total_label = _target(result, total_name)
    total_label = total_label or labels.get(total_name, total_name)
    lines = [("合计（各行之和）", shown)]
    if total is not None and total != shown:
        lines.append((f"尾差（{note or '合计后一次四舍五入'}）", total - shown))
    if total is not None:
        lines.append((total_label, total))
    return [{"label": label, "before": max(index, 1), "amount": money(amount), "after": after} for label, amount in lines]


def figure_rows(result):
    """The statement's figures: label, amount, and below a figure the parts it adds up from or its note."""
    rule = get_rule(result.run.scheme)
    labels = {**DETAIL_LABELS, **rule.detail_labels}
    details = result.details or {}
    rows = []
    for name, label in FIGURES:
        value = getattr(result, name)
        note = RECOVERY_NOTE if name == "recovery" and value else rule.figure_notes.get(name, "")
        row = {"name": name, "label": label, "value": money(value), "note": note, "parts": []}
        if name in rule.figure_parts:
            parts, note = rule.figure_parts[name]
            amounts = []
            for part in parts:
                amount, part_label = _part(details, part, labels)
                if amount is None:
                    continue
                amounts.append(amount)
                row["parts"].append((part_label, money(amount)))
            if amounts and sum(amounts, Decimal("0")) != value:
                row["parts"].append((f"尾差（{note or '合计后一次四舍五入'}）", money(value - sum(amounts, Decimal("0")))))
        rows.append(row)
    return rows


def _part(details, part, labels):
    if "." in part:
        key, column = part.split(".", 1)
        value = details.get(key)
        if not _is_table(value):
            return None, None
        _columns, stored = _table_rows(value, key)
        return _sum(stored, column), f"{labels.get(key, key)}：{COLUMN_LABELS.get(column, column)}合计"
    if part not in details:
        return None, None
    return _decimal(details[part]), labels.get(part, part)


# --- 违规扣款 (SPEC §9) ----------------------------------------------------------------------

FINDING_HEADERS = ["规则编码", "规则名称", "机构编码", "单据号", "疑点对象", "扣款依据"]
WHOLE = "整条疑点"


def _finding_cells(finding, amount, claim=None, case=None):
    """One deducted finding, or one claim's or case's share of a split one (its own institution and serial)."""
    item = claim or case
    if item is None:
        institution, serial, basis = finding.institution, finding.document_serial, WHOLE
    else:
        institution, serial = item.institution, item.serial
        basis = f"按单据分摊：疑点涉及金额{money(finding.amount)}元中本单据的部分"
    texts = [finding.rule, finding.rule_name, institution.code if institution else "—", serial or "—",
             finding.subject, basis]
    return [{"text": t, "money": False} for t in texts] + [{"text": money(amount), "money": True}]


def recovery_rows(result):
    """The 违规扣款明细 of a unit as a detail table: the findings deducted (a split finding's shares one
    row per claim or case), their 合计 and the figure.

    Empty when nothing was deducted; the amounts are the ones the run stored, whatever happened to the
    findings since."""
    items = list(recovery.deducted_items(result))
    if not items:
        return []
    footer = [("合计（各行之和）", recovery.total(items)), (FIGURE_LABELS["recovery"], result.recovery)]
    table = {
        "headers": FINDING_HEADERS + ["扣款金额（元）"],
        "rows": [_finding_cells(item.finding, item.amount, item.claim, item.case) for item in items],
        "footer": [{"label": label, "before": len(FINDING_HEADERS), "amount": money(amount), "after": 0}
                   for label, amount in footer],
    }
    return [{"label": "违规扣款明细", "table": table}]


def pending_recovery(result):
    """What was confirmed after the run took its deductions: shown, never added to the figures."""
    items = recovery.pending(result)
    if not items:
        return None
    findings, claims, cases = recovery.subjects_of(items)
    return {
        "headers": FINDING_HEADERS + ["应扣金额（元）"],
        "rows": [_finding_cells(findings[d.finding_id], d.amount, claims.get(d.claim_id), cases.get(d.case_id))
                 for d in items],
        "total": money(recovery.total(items)),
        "count": len(findings),
        # an approved run never changes: the next version takes them; a draft takes them when recomputed
        "when": "下一版本" if result.run.is_read_only else "重新计算后",
    }


# --- warnings --------------------------------------------------------------------------------

# Kinds of warning by what they say, so that forty lines of one kind read as one line with a count.
WARNING_KINDS = [
    (re.compile(r"没有已审批的人头标准"), "病种没有已审批的人头标准（未计入额度）"),
    (re.compile(r"没有.*人头标准|缺少.*标准"), "缺少标准"),
    (re.compile(r"总额付费状态"), "总额付费尚未获批"),
    (re.compile(r"共用同一个实际支出"), "多个医共体共用同一实际支出"),
    (re.compile(r"未入DRG病组"), "病例未入DRG病组"),
    (re.compile(r"个人负担超过支付标准"), "个人负担超过支付标准"),
    (re.compile(r"退出率"), "病种退出率超过上限"),
    (re.compile(r"统筹池"), "统筹池预算与点数"),
]


def warning_summary(warnings):
    """[{"kind", "count", "lines"}] in order of first appearance."""
    groups = {}
    for line in warnings or ():
        kind = next((label for pattern, label in WARNING_KINDS if pattern.search(line)), "其他提示")
        groups.setdefault(kind, []).append(line)
    return [{"kind": kind, "count": len(lines), "lines": lines} for kind, lines in groups.items()]
