"""The global-budget dashboard: budget against actual by month per alliance, each KPI against its
target with its monthly trend, every figure a link to the rows behind it. Read-only; the scope comes
from restrict(). Moved here from alliances/ (issue 16): it reads claims' pre-aggregates and budgets.

Charts are ECharts fed JSON built here (json_script): figures as exact decimal strings, flags for
what is over budget or misses its target; the browser does all of the drawing. Each chart has a
table with the same numbers.
"""
import datetime
from collections import defaultdict
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Q, Sum
from django.template.response import TemplateResponse
from django.utils import timezone

from alliances.budget_models import Comparison, Kpi, KpiTarget
from alliances.formatting import money
from alliances.models import Alliance, Institution, Membership, Region
from alliances.scope import restrict, scope_for
from alliances.services_budget import attainment, q2
from settlement.kpi_aggregates import selectors
from settlement.models import Budget, InpatientCase, OutpatientClaim, Scheme

from . import drilldown, kpis
from .kpi_trends import MONTHS, MonthlyFigures

# The dashboard is about budgets against spending, so it is for whoever may read budgets (city and
# county bureaus, hospitals, auditors; not the health commission). Scope then limits what it shows.
# templates/admin/index.html and the changelist links test the same permission through `perms`.
DASHBOARD_PERMISSION = "settlement.view_budget"
MIN_YEAR, MAX_YEAR = 2000, 2100
ZERO_MONEY = Decimal("0.00")


def may_view_dashboard(user):
    return user.is_active and user.has_perm(DASHBOARD_PERMISSION)


def _visible_counties(user, alliances):
    scope = scope_for(user)
    counties = Region.objects.filter(parent__isnull=False)
    if scope.sees_all:
        return counties
    if scope.is_regional:
        return counties.filter(pk__in=scope.region_ids)
    return counties.filter(pk__in=alliances.values("county_id"))


def budget_chart(name, budget, actual_by_month, link_for_month, data_id):
    """Monthly A against the monthly budget B / 12: the chart's data and the table's rows."""
    per_month = q2(budget / 12) if budget else ZERO_MONEY
    months = [{
        "month": m, "actual": actual_by_month.get(m, ZERO_MONEY), "over": actual_by_month.get(m, ZERO_MONEY) > per_month,
        "url": link_for_month(m), "text": money(actual_by_month.get(m, ZERO_MONEY)),
    } for m in MONTHS]
    total = sum((row["actual"] for row in months), ZERO_MONEY)
    return {
        "months": months, "per_month": money(per_month), "total": money(total), "budget": money(budget),
        "data_id": data_id,
        "data": {
            "title": f"{name}月度预算与实际", "months": [f"{m}月" for m in MONTHS],
            "actual": [str(row["actual"]) for row in months], "over": [row["over"] for row in months],
            "urls": [row["url"] for row in months], "per_month": str(per_month),
        },
    }


def kpi_state(value, target, reached):
    """One state per KPI row: 无数据 before anything else, so that no figure-less row reads 达标."""
    if value is None:
        return "无数据"
    if target is None:
        return "无目标"
    return "达标" if reached == 1 else "未达标"


def _reached(value, target):
    return attainment(value, target) if (value is not None and target is not None) else None


def _kpi_rows(figures, targets, links):
    rows = []
    for kpi in Kpi:
        value = figures.values.get(kpi.value)
        target = targets.get(kpi.value)
        reached = _reached(value, target)
        rows.append({
            "kpi": kpi.value, "label": kpi.label, "value": value, "target": target,
            "target_text": target_text(target) if target else "—",
            # 达成度 is always a percentage (or — without one); the state says 达标 / 未达标 / 无数据.
            "attainment": q2(reached * 100) if reached is not None else None,
            "state": kpi_state(value, target, reached),
            "met": reached is not None and reached == 1,
            "url": links.get(kpi.value),
        })
    return rows


COMPARISON_LABELS = dict(Comparison.choices)


def target_text(target):
    text = f"{COMPARISON_LABELS[target.comparison]} {target.target.normalize():f}"
    if target.comparison == "approx":
        text += f"±{target.tolerance.normalize():f}"
    return text


def kpi_trends(unit_name, monthly, unit_id, targets, dom_prefix):
    """Per KPI with a target: its value in each month against the target, a month that misses it
    flagged (达成度 < 1), as chart data and table rows. `monthly`: month → {unit id: UnitKpis}."""
    charts = []
    for kpi in Kpi:
        target = targets.get(kpi.value)
        if target is None:
            continue
        values = [monthly[m][unit_id].values.get(kpi.value) for m in MONTHS]
        reached = [_reached(v, target) for v in values]
        missed = [r is not None and r < 1 for r in reached]
        dom_id = f"{dom_prefix}-{kpi.value}"
        charts.append({
            "dom_id": dom_id, "data_id": f"{dom_id}-data",
            "label": kpi.label, "target": target, "target_text": target_text(target),
            "cells": [{"value": "—" if v is None else str(v), "missed": miss} for v, miss in zip(values, missed)],
            "data": {
                "title": f"{unit_name} {kpi.label}", "name": kpi.label, "months": [f"{m}月" for m in MONTHS],
                "values": [None if v is None else str(v) for v in values], "missed": missed,
                "attainment": [None if r is None else str(q2(r * 100)) for r in reached],
                "target": str(target.target), "target_text": target_text(target),
                "tolerance": str(target.tolerance) if target.comparison == "approx" else None,
            },
        })
    return charts


def latest_year_with_data(fallback):
    """The latest year, up to `fallback` (this year), with claims, cases or global budgets; else `fallback`."""
    years = [
        OutpatientClaim.objects.filter(visit_date__year__lte=fallback).aggregate(last=Max("visit_date"))["last"],
        InpatientCase.objects.filter(discharge_date__year__lte=fallback).aggregate(last=Max("discharge_date"))["last"],
    ]
    found = [day.year for day in years if day is not None]
    budget_year = Budget.objects.filter(scheme=Scheme.ALLIANCE_BUDGET, year__lte=fallback).aggregate(last=Max("year"))["last"]
    if budget_year is not None:
        found.append(budget_year)
    return max(found) if found else fallback


def _members_in_year(alliance_ids, year):
    first, last = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    members = defaultdict(set)
    rows = Membership.objects.filter(alliance_id__in=alliance_ids, joined_on__lte=last).filter(
        Q(left_on__isnull=True) | Q(left_on__gte=first)
    ).values_list("alliance_id", "institution_id")
    for alliance_id, institution_id in rows:
        members[alliance_id].add(institution_id)
    return members


def _year_asked(request):
    """The year of ?year=, else the latest year that has data; a bad one is said and replaced."""
    current = latest_year_with_data(timezone.localdate().year)
    asked = request.GET.get("year", "").strip()
    try:
        year = int(asked) if asked else current
    except ValueError:
        year = None
    if year is None or not MIN_YEAR <= year <= MAX_YEAR:
        # A hand-edited or stale link: show the default year and say why, rather than fail on date(0, 1, 1).
        messages.warning(request, f"年份“{asked[:20]}”无效（应为{MIN_YEAR}—{MAX_YEAR}之间的年份），已显示{current}年的数据")
        year = current
    return year


def dashboard(request):
    if not may_view_dashboard(request.user):
        raise PermissionDenied("您没有查看医共体运行监测看板的权限")
    year = _year_asked(request)
    user = request.user
    alliances = list(restrict(Alliance.objects.select_related("county"), user).order_by("code"))
    counties = list(_visible_counties(user, Alliance.objects.filter(pk__in=[a.pk for a in alliances])).order_by("code"))
    targets = KpiTarget.for_year(year)
    budgets = dict(
        restrict(Budget.objects.filter(year=year, scheme=Scheme.ALLIANCE_BUDGET), user)
        .values_list("unit_code").order_by().annotate(total=Sum("amount"))
    )
    # Figures from the monthly pre-aggregates (settlement.kpi_aggregates), not from the raw claims:
    # a fixed number of small queries whatever the size of the city (issue 13).
    stale = selectors.missing_years([year - 1, year])
    if stale:
        messages.warning(
            request, f"{'、'.join(map(str, stale))}年的指标汇总尚未完整生成，看板数字可能不全；"
                     f"请由管理员运行 manage.py rebuild_kpi_aggregates --year 年份",
        )
    alliance_ids = [a.pk for a in alliances]
    actual = selectors.monthly_actual(year, alliance_ids)
    members = _members_in_year(alliance_ids, year)
    alliance_figures = kpis.assemble(alliance_ids, {pk: pk for pk in alliance_ids}, kpis.ALLIANCE, year, selectors)
    monthly = MonthlyFigures(year)
    alliance_months = monthly.alliance_kpis(alliances)

    alliance_blocks = []
    for a in alliances:
        def month_link(month, alliance_id=a.pk):
            first = datetime.date(year, month, 1)
            last = (datetime.date(year + (month == 12), month % 12 + 1, 1) - datetime.timedelta(days=1))
            return drilldown.actual_claims(alliance_id, year, first, last)

        by_month = {m: actual.get((a.pk, m), ZERO_MONEY) for m in MONTHS}
        alliance_blocks.append({
            "alliance": a,
            "chart": budget_chart(a.name, budgets.get(a.code, ZERO_MONEY), by_month, month_link, f"budget-{a.pk}-data"),
            "kpis": _kpi_rows(
                alliance_figures[a.pk], targets,
                drilldown.kpi_links(year, a.county.code, drilldown.providers(members[a.pk])),
            ),
            "trends": kpi_trends(a.name, alliance_months, a.pk, targets, f"alliance-{a.pk}"),
        })

    county_ids = [c.pk for c in counties]
    county_figures = kpis.assemble(county_ids, {pk: pk for pk in county_ids}, kpis.COUNTY, year, selectors)
    county_months = monthly.county_kpis(counties)
    institutions_by_county = defaultdict(set)
    for pk, county_id in Institution.objects.filter(county__in=county_ids).values_list("pk", "county_id"):
        institutions_by_county[county_id].add(pk)
    county_blocks = [
        {
            "county": c,
            "kpis": _kpi_rows(
                county_figures[c.pk], targets,
                drilldown.kpi_links(year, c.code, drilldown.providers(institutions_by_county[c.pk])),
            ),
            "trends": kpi_trends(c.name, county_months, c.pk, targets, f"county-{c.pk}"),
        }
        for c in counties
    ]
    context = {
        **admin.site.each_context(request),
        "title": f"{year}年医共体总额付费监测",
        "year": year,
        "years": range(year - 3, year + 2),
        "months": MONTHS,
        "alliance_blocks": alliance_blocks,
        "county_blocks": county_blocks,
    }
    return TemplateResponse(request, "settlement/analysis/dashboard.html", context)
