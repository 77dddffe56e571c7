"""The KPI selectors of alliances.kpis, read from the pre-aggregates: same signatures, same shapes,
same figures as its RawSource (tests/settlement/test_kpi_aggregates.py holds them side by side).

Each selector is one query over thousands of rows (months × institutions), whatever the number of
claims. Registered as alliances.kpis' aggregated source in settlement.apps.
"""
from collections import defaultdict

from django.db import connection
from django.db.models import Sum

from settlement.analysis.kpis import percent

from .models import KpiAggregateYear, KpiPopulationMonth, KpiUnitYear, PopulationBasis, ProviderLevel, UnitLevel

PROVIDER_FIGURES = ("claims", "claim_total", "claim_personal", "referrals", "cases", "case_total", "case_personal",
                    "transfers", "bed_day_cases", "bed_days", "bed_day_total")
COUNTS = {"claims", "referrals", "cases", "transfers", "bed_day_cases", "bed_days"}


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def provider_sums(year, level):
    """unit → sums of the care given by the unit's institutions in the year (alliances.kpis.provider_sums)."""
    sums = ", ".join(f"SUM(p.{name})" for name in PROVIDER_FIGURES)
    if level == "county":
        # An institution's county today, as the raw selector reads it.
        sql = f"""SELECT i.county_id, {sums} FROM settlement_kpiprovidermonth p
                    JOIN alliances_institution i ON i.id = p.unit_id
                   WHERE p.year = %s AND p.level = %s GROUP BY i.county_id"""
        params = [year, ProviderLevel.INSTITUTION.value]
    else:
        sql = f"SELECT p.unit_id, {sums} FROM settlement_kpiprovidermonth p WHERE p.year = %s AND p.level = %s GROUP BY 1"
        params = [year, ProviderLevel.ALLIANCE.value if level == "alliance" else ProviderLevel.INSTITUTION.value]
    return {
        unit: {name: int(value) if name in COUNTS else value for name, value in zip(PROVIDER_FIGURES, figures)}
        for unit, *figures in _fetch(sql, params)
    }


def disease_exit_rate(year, level, unit_ids):
    """unit → 病种退出率 or None (alliances.kpis.disease_exit_rate)."""
    from_institutions = level == "county"
    unit = "i.county_id" if from_institutions else "p.unit_id"
    join = "JOIN alliances_institution i ON i.id = p.unit_id" if from_institutions else ""
    rows = _fetch(
        f"""SELECT {unit}, SUM(p.disease_cases), SUM(p.disease_exits) FROM settlement_kpiprovidermonth p {join}
             WHERE p.year = %s AND p.level = %s AND p.disease_cases > 0 GROUP BY 1""",
        [year, ProviderLevel.ALLIANCE.value if level == "alliance" else ProviderLevel.INSTITUTION.value],
    )
    found = {pk: percent(exits, cases) for pk, cases, exits in rows}
    return {pk: found.get(pk) for pk in unit_ids}


def _population(year, basis, level):
    out = defaultdict(lambda: defaultdict(int))
    rows = _fetch(
        """SELECT unit_id, SUM(visits), SUM(visits) FILTER (WHERE in_county), SUM(visits) FILTER (WHERE "primary"),
                  SUM(stays), SUM(stays) FILTER (WHERE in_county)
             FROM settlement_kpipopulationmonth WHERE year = %s AND basis = %s GROUP BY unit_id""",
        [year, basis.value],
    )
    for unit, *figures in rows:
        out[unit].update(zip(("visits", "visits_in_county", "visits_primary", "stays", "stays_in_county"),
                             (int(value or 0) for value in figures)))
    for unit, insured in KpiUnitYear.objects.filter(year=year, level=level, insured__gt=0).values_list("unit_id", "insured"):
        out[unit]["insured"] = insured
    return out


def population_sums(year):
    """county id → what happened to the county's insured persons in the year (alliances.kpis.population_sums)."""
    return _population(year, PopulationBasis.COUNTY, UnitLevel.COUNTY)


def alliance_population_sums(year):
    """alliance id → the same for the persons the alliance covers (alliances.kpis.alliance_population_sums)."""
    return _population(year, PopulationBasis.ALLIANCE, UnitLevel.ALLIANCE)


def signed_persons(year, level):
    """unit → signed persons (alliances.kpis.signed_persons)."""
    return dict(KpiUnitYear.objects.filter(year=year, level=level, signed__gt=0).values_list("unit_id", "signed"))


def monthly_actual(year, alliance_ids):
    """(alliance id, month) → A of that month (settlement.engine.schemes.alliance_budget.actual_by_alliance)."""
    rows = (
        KpiPopulationMonth.objects.filter(year=year, basis=PopulationBasis.ALLIANCE, unit_id__in=list(alliance_ids))
        .values_list("unit_id", "month").order_by().annotate(total=Sum("resident_general_fund"))
    )
    return {(unit, month): total for unit, month, total in rows}


def missing_years(years):
    """Those of `years` no full rebuild has written yet: their figures may be partial."""
    built = set(KpiAggregateYear.objects.filter(year__in=list(years)).values_list("year", flat=True))
    return sorted(set(years) - built)
