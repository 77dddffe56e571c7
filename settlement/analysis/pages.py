"""What the DRG 运行分析 page shows, scoped (SPEC §1, §10): built here, rendered by the admin view.

A hospital sees its own institutions beside the pool as one unit (统筹池平均), never another
institution's row or name; a county its county's pools; the city and the auditor every pool. Chart
data are plain lists of exact decimal strings handed to ECharts with json_script.
"""
import datetime

from django.db.models import Max

from alliances.models import Institution
from alliances.scope import restrict, scope_for
from settlement.engine.schemes.drg import pool_budgets
from settlement.models import InpatientCase

from . import aggregates, drg
from .reports import POOL_AVERAGE

ALL_SETS = ("institution", "pool", "institution_group", "pool_group", "institution_month", "pool_month")
SUMMARY_SETS = ("institution", "pool", "pool_month")
MINUS = "\u2212"


def default_year():
    latest = InpatientCase.objects.aggregate(latest=Max("discharge_date"))["latest"]
    return latest.year if latest else datetime.date.today().year


def scope_arguments(user):
    """The restriction of the pools a user may pick: nothing (whole city), a region, or institutions."""
    scope = scope_for(user)
    if scope.sees_all:
        return {}
    if scope.is_regional:
        return {"region_code": next(iter(scope.region_codes), "")}
    return {"institution_ids": sorted(scope.institution_ids)}


def visible_institutions(user):
    return {pk: (code, name) for pk, code, name in restrict(Institution.objects.all(), user).values_list("pk", "code", "name")}


def ratio(value):
    return "—" if value is None else f"{value:.4f}"


def money(value):
    if value is None:
        return "—"
    text = f"{abs(value):,.2f}"
    return f"{MINUS}{text}" if value < 0 else text


def table_row(code, name, item):
    return {
        "code": code, "name": name, "institution_id": item.institution_id, "cases": item.cases,
        "groups": item.groups, "grouping_rate": ratio(item.grouping_rate), "cmi": ratio(item.cmi),
        "cost_index": ratio(item.cost_index), "time_index": ratio(item.time_index),
        "low_risk_mortality": ratio(item.low_risk_mortality), "high_cases": item.high_cases,
        "low_cases": item.low_cases, "balance": money(item.balance),
        "sort": {  # raw values the table sorts by
            "cmi": str(item.cmi or ""), "cost_index": str(item.cost_index or ""), "balance": str(item.balance or ""),
        },
        "item": item,
    }


def page(year, pool_code, user, institution_id=None, the_basis=None):
    """The page's figures for one pool and year; institution_id narrows the drill-down and the trends
    to one visible institution of the pool (else they are the pool's; for a hospital with one
    institution in the pool, its own)."""
    the_basis = the_basis or drg.basis(year)
    aggregated = aggregates.is_fresh(the_basis)
    if aggregated:  # the summary rows first; the groups and months of the one unit shown, below
        items = aggregates.indices(year, SUMMARY_SETS, pool_code=pool_code, the_basis=the_basis)
    else:  # one statement for every level: its cost is the scan of the cases, not the levels
        items = drg.indices(year, ALL_SETS, pool_code=pool_code, the_basis=the_basis)
    known = visible_institutions(user)
    mine = [i for i in items if i.level == "institution" and i.institution_id in known]
    pool_row = next((i for i in items if i.level == "pool"), None)
    rows = [table_row(*known[i.institution_id], i) for i in sorted(mine, key=lambda i: known[i.institution_id][0])]
    if pool_row is not None:
        rows.append({**table_row(pool_code, POOL_AVERAGE, pool_row), "is_pool": True})
    pool_asked = institution_id == 0  # ?institution=0: the pool's groups and trend, explicitly
    if institution_id not in {i.institution_id for i in mine}:
        institution_id = None
    if institution_id is None and not pool_asked and len(mine) == 1 and scope_for(user).is_hospital:
        institution_id = mine[0].institution_id  # a hospital's own groups and trend first; the pool's one click away
    if aggregated:
        items += aggregates.indices(
            year, ("pool_group",) if institution_id is None else ("institution_group", "institution_month"),
            pool_code=pool_code, institution_ids=None if institution_id is None else [institution_id],
            the_basis=the_basis)
    names = drg.group_names(year)
    standards = drg.group_average_costs(year)
    groups = [i for i in items if (i.level == "institution_group" and i.institution_id == institution_id)
              or (institution_id is None and i.level == "pool_group")]
    group_rows = [{
        "code": g.drg_code or "（无DRG编码）", "raw_code": g.drg_code, "name": names.get(g.drg_code, "未入组"),
        "cases": g.cases, "mean_cost": money(g.mean_cost),
        "standard_cost": money(standards.get(g.drg_code)),
        "cost_index": ratio(g.cost_index), "high_cases": g.high_cases, "low_cases": g.low_cases,
        "balance": money(g.balance), "raw_balance": g.balance,
    } for g in sorted(groups, key=lambda g: (g.drg_code or "~"))]
    budget = pool_budgets(year).get(pool_code)
    pool_months = [i for i in items if i.level == "pool_month"]
    pvs = drg.cumulative_point_values(year, pool_code, pool_months, budget)
    months = {i.month: i for i in items if (i.level == "institution_month" and i.institution_id == institution_id)
              or (institution_id is None and i.level == "pool_month")}
    trend_rows = [{
        "month": m, "cases": months[m].cases if m in months else 0,
        "cmi": ratio(months[m].cmi) if m in months else "—",
        "cost_index": ratio(months[m].cost_index) if m in months else "—",
        "time_index": ratio(months[m].time_index) if m in months else "—",
        "point_value": "—" if pvs[m] is None else f"{pvs[m]:.6f}",
    } for m in range(1, 13)]
    unit_label = f"{known[institution_id][1]}（{known[institution_id][0]}）" if institution_id else f"统筹池{pool_code}"
    return {
        "aggregated": aggregated, "rows": rows, "groups": group_rows, "trend": trend_rows, "unit_label": unit_label,
        "institution_id": institution_id, "quadrant": quadrant_data(rows),
        "trend_chart": trend_data(trend_rows, unit_label),
    }


def quadrant_data(rows):
    """Bubbles of CMI (x) against 费用消耗指数 (y), size = cases; exact figures in the tooltip."""
    points = [{
        "name": f"{r['name']}（{r['code']}）", "cmi": str(r["item"].cmi), "cost_index": str(r["item"].cost_index),
        "cases": r["cases"], "pool": bool(r.get("is_pool")),
        "tooltip": f"{r['name']}（{r['code']}）<br>CMI {r['cmi']}<br>费用消耗指数 {r['cost_index']}<br>病例数 {r['cases']}",
    } for r in rows if r["item"].cmi is not None and r["item"].cost_index is not None]
    return {"title": "CMI与费用消耗指数（气泡大小为病例数）", "x": "CMI", "y": "费用消耗指数", "points": points}


def trend_data(trend_rows, unit_label):
    def values(key):
        return [None if r[key] == "—" else r[key] for r in trend_rows]

    return {
        "title": f"{unit_label}月度趋势", "months": [f"{r['month']}月" for r in trend_rows],
        "series": [
            {"name": "CMI", "values": values("cmi"), "axis": 0},
            {"name": "费用消耗指数", "values": values("cost_index"), "axis": 0},
            {"name": "时间消耗指数", "values": values("time_index"), "axis": 0},
            {"name": "累计测算点值（元/点）", "values": values("point_value"), "axis": 1},
        ],
    }
