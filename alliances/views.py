"""The global-budget dashboard: budget against actual by month per alliance, each KPI against its
target, every figure a link to the rows behind it. Read-only; the scope comes from restrict()."""
import datetime
from collections import defaultdict
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Q, Sum
from django.db.models.functions import ExtractMonth
from django.template.response import TemplateResponse
from django.utils import timezone

from . import drilldown, kpis
from .budget_models import Kpi, KpiTarget
from .models import Alliance, Institution, Membership, Region
from .scope import restrict, scope_for
from .services_budget import attainment, q2

CHART_W, CHART_H, BAR_GAP = 600, 160, 8
# Room above the tallest bar and right of the plot for the monthly-budget line's label.
CHART_TOP, CHART_LABEL_W = 10, 160
# The dashboard is about budgets against spending, so it is for whoever may read budgets (city and
# county bureaus, hospitals, auditors; not the health commission). Scope then limits what it shows.
# templates/admin/index.html and the changelist links test the same permission through `perms`.
DASHBOARD_PERMISSION = "settlement.view_budget"
MIN_YEAR, MAX_YEAR = 2000, 2100


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


def monthly_actual(year, alliance_ids, source):
    """(alliance id, month) → A of that month: 统筹支付 of the covered residents' 普通门诊 claims
    (SPEC §6.4 Coverage: each claim counts for one alliance, so a county's two alliances do not
    both show the county's spending). Read from the pre-aggregates when they are registered."""
    if source is not kpis.RAW:
        return source.monthly_actual(year, alliance_ids)
    from settlement.engine.schemes.alliance_budget import actual_by_alliance

    return actual_by_alliance(year, alliance_ids, by_month=True)


def budget_chart(budget, actual_by_month, link_for_month):
    """Bars of monthly A against the monthly budget line B / 12, scaled to the larger figure.

    Pixel geometry only (float is fine here); the money figures stay Decimal for the labels.
    """
    per_month = q2(budget / 12) if budget else Decimal("0.00")
    top = max([per_month, *actual_by_month.values(), Decimal("1")])
    bar_w = (CHART_W - BAR_GAP * 13) / 12
    baseline = CHART_TOP + CHART_H
    bars = []
    for month in range(1, 13):
        value = actual_by_month.get(month, Decimal("0.00"))
        height = float(value / top) * CHART_H
        x = BAR_GAP + (month - 1) * (bar_w + BAR_GAP)
        bars.append({
            "month": month, "value": value, "x": round(x, 1), "center": round(x + bar_w / 2, 1),
            "y": round(baseline - height, 1), "height": round(height, 1), "width": round(bar_w, 1),
            "over": value > per_month, "url": link_for_month(month),
        })
    line_y = round(baseline - float(per_month / top) * CHART_H, 1)
    total = sum(actual_by_month.values(), Decimal("0.00"))
    return {
        "bars": bars, "per_month": per_month, "line_y": line_y, "label_y": round(line_y + 4, 1),
        "width": CHART_W, "height": CHART_H, "baseline": baseline, "month_label_y": baseline + 14,
        "svg_width": CHART_W + CHART_LABEL_W, "svg_height": baseline + 20, "label_x": CHART_W + 6,
        "total": total, "budget": budget,
    }


def kpi_state(value, target, reached):
    """One state per KPI row: 无数据 before anything else, so that no figure-less row reads 达标."""
    if value is None:
        return "无数据"
    if target is None:
        return "无目标"
    return "达标" if reached == 1 else "未达标"


def _kpi_rows(figures, targets, links):
    rows = []
    for kpi in Kpi:
        value = figures.values.get(kpi.value)
        target = targets.get(kpi.value)
        reached = attainment(value, target) if (value is not None and target is not None) else None
        scale = max(abs(Decimal(value)) if value is not None else Decimal("0"),
                    abs(target.target) * Decimal("1.25") if target else Decimal("0"), Decimal("1"))
        rows.append({
            "label": kpi.label, "value": value, "target": target,
            # 达成度 is always a percentage (or — without one); the state says 达标 / 未达标 / 无数据.
            "attainment": q2(reached * 100) if reached is not None else None,
            "state": kpi_state(value, target, reached),
            "met": reached is not None and reached == 1,
            "bar": int(abs(Decimal(value)) / scale * 100) if value is not None else 0,
            "target_mark": int(abs(target.target) / scale * 100) if target else None,
            "url": links.get(kpi.value),
        })
    return rows


def latest_year_with_data(fallback):
    """The latest year, up to `fallback` (this year), with claims, cases or global budgets; else `fallback`."""
    from settlement.models import Budget, InpatientCase, OutpatientClaim, Scheme

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


def dashboard(request):
    from settlement.models import Budget, Scheme

    if not may_view_dashboard(request.user):
        raise PermissionDenied("您没有查看医共体运行监测看板的权限")
    # Opened without a year: the latest year that has data, not an empty current year.
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
    user = request.user
    alliances = restrict(Alliance.objects.select_related("county"), user).order_by("code")
    counties = _visible_counties(user, alliances).order_by("code")
    targets = KpiTarget.for_year(year)

    budgets = dict(
        restrict(Budget.objects.filter(year=year, scheme=Scheme.ALLIANCE_BUDGET), user)
        .values_list("unit_code").order_by().annotate(total=Sum("amount"))
    )
    # Figures from the monthly pre-aggregates (settlement.kpi_aggregates), not from the raw claims:
    # a fixed number of small queries whatever the size of the city (issue 13).
    source = kpis.aggregated_source()
    stale = source.missing_years([year - 1, year]) if source is not kpis.RAW else []
    if stale:
        messages.warning(
            request, f"{'、'.join(map(str, stale))}年的指标汇总尚未完整生成，看板数字可能不全；"
                     f"请由管理员运行 manage.py rebuild_kpi_aggregates --year 年份",
        )
    actual = monthly_actual(year, [a.pk for a in alliances], source)
    members = _members_in_year([a.pk for a in alliances], year)
    alliance_figures = kpis.alliance_kpis(year, alliances, source)

    alliance_blocks = []
    for a in alliances:
        def month_link(month, alliance_id=a.pk):
            first = datetime.date(year, month, 1)
            last = (datetime.date(year + (month == 12), month % 12 + 1, 1) - datetime.timedelta(days=1))
            return drilldown.actual_claims(alliance_id, year, first, last)

        by_month = {m: actual.get((a.pk, m), Decimal("0.00")) for m in range(1, 13)}
        alliance_blocks.append({
            "alliance": a,
            "chart": budget_chart(budgets.get(a.code, Decimal("0.00")), by_month, month_link),
            "kpis": _kpi_rows(
                alliance_figures[a.pk], targets,
                drilldown.kpi_links(year, a.county.code, drilldown.providers(members[a.pk])),
            ),
        })

    county_figures = kpis.county_kpis(year, counties, source)
    institutions_by_county = defaultdict(set)
    for pk, county_id in Institution.objects.filter(county__in=counties).values_list("pk", "county_id"):
        institutions_by_county[county_id].add(pk)
    county_blocks = [
        {
            "county": c,
            "kpis": _kpi_rows(
                county_figures[c.pk], targets,
                drilldown.kpi_links(year, c.code, drilldown.providers(institutions_by_county[c.pk])),
            ),
        }
        for c in counties
    ]
    context = {
        **admin.site.each_context(request),
        "title": f"{year}年医共体总额付费监测",
        "year": year,
        "years": range(year - 3, year + 2),
        "alliance_blocks": alliance_blocks,
        "county_blocks": county_blocks,
    }
    return TemplateResponse(request, "alliances/dashboard.html", context)
