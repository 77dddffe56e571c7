"""Each KPI month by month, from the monthly pre-aggregates (settlement.kpi_aggregates), for the
dashboard's trend lines against the targets (issue 16).

A month's KPIs are the yearly formulas of analysis.kpis applied to that month's sums: rates over
the month's visits and stays, growth against the same month of the year before, bed days of the
cases discharged in the month. Persons insured and signed are the year's (a head count, not a
flow). `MonthlyFigures` reads every month of both years in a fixed handful of queries, then hands
kpis.assemble one source per month whose selectors answer from memory, so the month's figures go
through the very code the yearly ones do.
"""
from collections import defaultdict

from django.db import connection

from settlement.kpi_aggregates import selectors
from settlement.kpi_aggregates.models import PopulationBasis, ProviderLevel, UnitLevel

from . import kpis

MONTHS = range(1, 13)
DISEASE_FIGURES = ("disease_cases", "disease_exits")
POPULATION_FIGURES = ("visits", "visits_in_county", "visits_primary", "stays", "stays_in_county")


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _provider_months(years, level):
    """(year, month) → unit → the provider sums of kpi_aggregates.selectors.provider_sums, per month."""
    names = selectors.PROVIDER_FIGURES + DISEASE_FIGURES
    sums = ", ".join(f"SUM(p.{name})" for name in names)
    if level == kpis.COUNTY:
        unit, join, stored = "i.county_id", "JOIN alliances_institution i ON i.id = p.unit_id", ProviderLevel.INSTITUTION
    else:
        unit, join, stored = "p.unit_id", "", ProviderLevel(level)
    out = defaultdict(dict)
    rows = _fetch(f"""SELECT p.year, p.month, {unit}, {sums} FROM settlement_kpiprovidermonth p {join}
                       WHERE p.year = ANY(%s) AND p.level = %s GROUP BY 1, 2, 3""", [list(years), stored.value])
    for year, month, pk, *figures in rows:
        out[(year, month)][pk] = {
            name: int(value) if name in selectors.COUNTS or name in DISEASE_FIGURES else value
            for name, value in zip(names, figures)
        }
    return out


def _population_months(year, basis, level):
    """month → unit → the population sums of the year's month, with the year's insured persons."""
    out = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    rows = _fetch(
        """SELECT month, unit_id, SUM(visits), SUM(visits) FILTER (WHERE in_county), SUM(visits) FILTER (WHERE "primary"),
                  SUM(stays), SUM(stays) FILTER (WHERE in_county)
             FROM settlement_kpipopulationmonth WHERE year = %s AND basis = %s GROUP BY 1, 2""",
        [year, basis.value],
    )
    for month, pk, *figures in rows:
        out[month][pk].update(zip(POPULATION_FIGURES, (int(value or 0) for value in figures)))
    insured = dict(_fetch("SELECT unit_id, insured FROM settlement_kpiunityear WHERE year = %s AND level = %s AND insured > 0",
                          [year, level.value]))
    for month in MONTHS:
        for pk, persons in insured.items():
            out[month][pk]["insured"] = persons
    return out


class _MonthSource:
    """The selectors of kpis.RawSource for one month of `year` (and the same month a year before)."""

    def __init__(self, figures, month):
        self.figures, self.month = figures, month

    def provider_sums(self, year, level):
        return self.figures.providers[level].get((year, self.month), {})

    def population_sums(self, year):
        return self.figures.population[kpis.COUNTY][self.month]

    def alliance_population_sums(self, year):
        return self.figures.population[kpis.ALLIANCE][self.month]

    def signed_persons(self, year, level):
        return self.figures.signed[level]

    def disease_exit_rate(self, year, level, unit_ids):
        month = self.figures.providers[level].get((year, self.month), {})
        return {pk: kpis.percent(month[pk]["disease_exits"], month[pk]["disease_cases"]) if pk in month else None
                for pk in unit_ids}


class MonthlyFigures:
    """Every month's KPIs of the year's counties and alliances, read once."""

    def __init__(self, year, levels=(kpis.COUNTY, kpis.ALLIANCE)):
        self.year = year
        self.providers = {level: _provider_months((year - 1, year), level) for level in levels}
        self.population = {
            kpis.COUNTY: _population_months(year, PopulationBasis.COUNTY, UnitLevel.COUNTY),
            kpis.ALLIANCE: (_population_months(year, PopulationBasis.ALLIANCE, UnitLevel.ALLIANCE)
                            if kpis.ALLIANCE in levels else {}),
        }
        self.signed = {level: selectors.signed_persons(year, level) for level in levels}

    def county_kpis(self, counties):
        """month → {county id: UnitKpis}; `counties` (restricted) regions."""
        ids = [c.pk for c in counties]
        return {m: kpis.assemble(ids, {pk: pk for pk in ids}, kpis.COUNTY, self.year, _MonthSource(self, m))
                for m in MONTHS}

    def alliance_kpis(self, alliances):
        """month → {alliance id: UnitKpis}; `alliances` (restricted) alliances."""
        county_of = {a.pk: a.county_id for a in alliances}
        return {m: kpis.assemble(list(county_of), county_of, kpis.ALLIANCE, self.year, _MonthSource(self, m))
                for m in MONTHS}
