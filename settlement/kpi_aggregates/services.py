"""Rebuilding the KPI pre-aggregates, set-based: one DELETE and one INSERT … SELECT … GROUP BY per
table and batch of months, never a loop over claims or cases.

Three doors:
- every import that lands claims or cases changes the month rows by what it changed (`KpiDelta`: its
  rows as they were out, as they are in), inside its own landing transaction
  (settlement.imports.services), so a rolled-back import changes no aggregate either;
- a change or delete of a claim or case through the admin does the same (settlement.admin);
- `manage.py rebuild_kpi_aggregates --year Y` (and the Celery task `rebuild_kpi_aggregates_task`)
  rebuilds a whole year, including the yearly figures. `refresh_months` rewrites whole months, from
  the same statements.

When a full rebuild is needed: the attribution of care to alliances does not come from claims.
After contracts, memberships, default alliances or persons (status, county) change — an import of
参保人 / 签约 / 医共体成员, or an edit in the admin — the alliance figures of every year whose
coverage they touch are stale until `rebuild_kpi_aggregates --year Y` runs for those years. A year
costs four grouped scans of its claims (institution, alliance on the day, person's county, covering
alliance) and one coverage statement; bench/kpi_aggregates_bench.py prints what it takes. The same
holds for approved per-disease standards (which cases are 按病种付费) and institutions' county or level.
"""
import datetime
import time
import uuid
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from settlement.analysis import kpis
from alliances.models import InstitutionLevel
from contracts.coverage import COVERAGE_SQL, coverage_of_sql, coverage_params
from contracts.models import InsuranceType, PersonStatus
from settlement.engine.case_requests import DiseaseExitRequest, RequestStatus
from settlement.engine.schemes.inpatient_common import DISEASE, classified_cases_sql
from settlement.models import VisitType

from .models import KpiAggregateYear, KpiUnitYear, PopulationBasis, ProviderLevel, UnitLevel

PRIMARY_LEVELS = [InstitutionLevel.PRIMARY.value, InstitutionLevel.GRASSROOTS.value]
COVERAGE_TABLE = "kpi_coverage"
# SPEC §3: length of stay = discharge − admission in days, at least 1.
STAY_DAYS = "GREATEST(k.discharge_date - k.admission_date, 1)"

# Claims and cases of the chosen months, as provider rows (unit, month, figures…).
_PROVIDER_PARTS = """
    SELECT {unit} AS unit_id, EXTRACT(MONTH FROM c.visit_date)::int AS month,
           SUM({cw}) AS claims, SUM({cw} * c.total_cost) AS claim_total, SUM({cw} * c.personal_paid) AS claim_personal,
           COALESCE(SUM({cw}) FILTER (WHERE c.referral), 0) AS referrals,
           0 AS cases, 0 AS case_total, 0 AS case_personal, 0 AS transfers,
           0 AS bed_day_cases, 0 AS bed_days, 0 AS bed_day_total
      FROM {claims} c {claim_join}
     WHERE {claim_months}
     GROUP BY 1, 2
    UNION ALL
    SELECT {case_unit}, EXTRACT(MONTH FROM k.discharge_date)::int,
           0, 0, 0, 0,
           SUM({kw}), SUM({kw} * k.total_cost), SUM({kw} * k.personal_paid),
           COALESCE(SUM({kw}) FILTER (WHERE k.transferred), 0),
           COALESCE(SUM({kw}) FILTER (WHERE k.bed_day_category <> ''), 0),
           COALESCE(SUM({kw} * """ + STAY_DAYS + """) FILTER (WHERE k.bed_day_category <> ''), 0),
           COALESCE(SUM({kw} * k.total_cost) FILTER (WHERE k.bed_day_category <> ''), 0)
      FROM {cases} k {case_join}
     WHERE {case_months}
     GROUP BY 1, 2
"""
_MEMBER_ON = "JOIN alliances_membership m ON m.institution_id = {t}.institution_id AND m.joined_on <= {t}.{day} " \
             "AND (m.left_on IS NULL OR m.left_on >= {t}.{day})"
# Filled by _refresh_months (_sources): where the rows come from, and each row's weight (1, or the
# sign of a delta row: +1 as it is now, −1 as it was).
_LATE = ("claims", "cases", "claim_months", "case_months", "cw", "kw")


def _keep_late(template):
    for name in _LATE:
        template = template.replace(f"{{{name}}}", f"{{{{{name}}}}}")
    return template


_PROVIDER_SQL = {
    ProviderLevel.INSTITUTION: _keep_late(_PROVIDER_PARTS).format(
        unit="c.institution_id", claim_join="", case_unit="k.institution_id", case_join=""),
    ProviderLevel.ALLIANCE: _keep_late(_PROVIDER_PARTS).format(
        unit="m.alliance_id", claim_join=_MEMBER_ON.format(t="c", day="visit_date"),
        case_unit="m.alliance_id", case_join=_MEMBER_ON.format(t="k", day="discharge_date")),
}

# Claims and cases of the chosen months, as population rows of both bases in one pass: the treated
# person's county (every person) and covering alliance (the coverage table; a person without one has
# no alliance row). The coverage row's county and insurance type are the person's own, so "in the
# county" and the resident's fund read the same for both; GROUPING SETS groups the joined rows twice.
# (One coverage row per person: an institution is in one alliance at a time, Membership.clean.)
_POPULATION_PARTS = """
    SELECT EXTRACT(MONTH FROM c.visit_date)::int AS month, GROUPING(p.county_id) = 1 AS by_alliance,
           COALESCE(p.county_id, w.alliance_id) AS unit_id,
           COALESCE(i.county_id = p.county_id, false) AS in_county, i.level = ANY(%(primary)s) AS is_primary,
           SUM({cw}) AS visits, 0 AS stays,
           COALESCE(SUM({cw} * c.fund_paid) FILTER (WHERE c.visit_type = %(general)s AND p.insurance_type = %(resident)s),
                    0) AS resident_general_fund
      FROM {claims} c JOIN contracts_insuredperson p ON p.id = c.person_id
      LEFT JOIN """ + COVERAGE_TABLE + """ w ON w.person_id = c.person_id
      JOIN alliances_institution i ON i.id = c.institution_id
     WHERE {claim_months}
     GROUP BY GROUPING SETS (
         (EXTRACT(MONTH FROM c.visit_date)::int, p.county_id, COALESCE(i.county_id = p.county_id, false),
          i.level = ANY(%(primary)s)),
         (EXTRACT(MONTH FROM c.visit_date)::int, w.alliance_id, COALESCE(i.county_id = p.county_id, false),
          i.level = ANY(%(primary)s)))
    UNION ALL
    SELECT EXTRACT(MONTH FROM k.discharge_date)::int, GROUPING(p.county_id) = 1, COALESCE(p.county_id, w.alliance_id),
           COALESCE(i.county_id = p.county_id, false), i.level = ANY(%(primary)s), 0, SUM({kw}), 0
      FROM {cases} k JOIN contracts_insuredperson p ON p.id = k.person_id
      LEFT JOIN """ + COVERAGE_TABLE + """ w ON w.person_id = k.person_id
      JOIN alliances_institution i ON i.id = k.institution_id
     WHERE {case_months}
     GROUP BY GROUPING SETS (
         (EXTRACT(MONTH FROM k.discharge_date)::int, p.county_id, COALESCE(i.county_id = p.county_id, false),
          i.level = ANY(%(primary)s)),
         (EXTRACT(MONTH FROM k.discharge_date)::int, w.alliance_id, COALESCE(i.county_id = p.county_id, false),
          i.level = ANY(%(primary)s)))
"""


def _params(year, months):
    months = sorted(months)
    # The span of the months, so that the date indexes narrow the scan to them (one month of a
    # monthly upload reads that month, not the year).
    after = datetime.date(year + 1, 1, 1) if months[-1] == 12 else datetime.date(year, months[-1] + 1, 1)
    return {
        "year": year, "months": months, "first": datetime.date(year, months[0], 1),
        "last": after - datetime.timedelta(days=1),
        "primary": PRIMARY_LEVELS, "general": VisitType.GENERAL.value, "resident": InsuranceType.RESIDENT.value,
    }


def _load_coverage(cursor, year, persons=None):
    """The year's coverage (SPEC §6.4) once into a temporary table, for the alliance population rows;
    of the persons `persons` (SQL selecting their ids) only, when given."""
    cursor.execute(f"DROP TABLE IF EXISTS {COVERAGE_TABLE}")
    coverage = COVERAGE_SQL if persons is None else coverage_of_sql(persons)
    cursor.execute(
        f"CREATE TEMPORARY TABLE {COVERAGE_TABLE} ON COMMIT DROP AS "
        f"SELECT person_id, county_id, insurance_type, status, alliance_id FROM ({coverage}) cov",
        coverage_params(year),
    )
    cursor.execute(f"ANALYZE {COVERAGE_TABLE}")


CLAIMS_TABLE, CASES_TABLE = "settlement_outpatientclaim", "settlement_inpatientcase"
STAGED_CLAIMS, STAGED_CASES = "kpi_month_claims", "kpi_month_cases"


def _stage_months(cursor, params):
    """The chosen months' claims and cases, the columns the aggregates read, read once each into
    temporary tables. A month's claims lie all over the claims table (a city's 800,000 of them on
    nearly every page of 10 million rows): each grouped statement reading them again from the table
    read the whole table again, four times per refresh."""
    for staged, table, day, columns in (
        (STAGED_CLAIMS, CLAIMS_TABLE, "visit_date",
         "institution_id, person_id, visit_date, visit_type, total_cost, personal_paid, fund_paid, referral"),
        (STAGED_CASES, CASES_TABLE, "discharge_date",
         "institution_id, person_id, admission_date, discharge_date, total_cost, personal_paid, transferred, "
         "bed_day_category"),
    ):
        cursor.execute(f"DROP TABLE IF EXISTS {staged}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staged} ON COMMIT DROP AS SELECT {columns} FROM {table} "
            f"WHERE {day} BETWEEN %(first)s AND %(last)s AND EXTRACT(MONTH FROM {day})::int = ANY(%(months)s)",
            params,
        )
        cursor.execute(f"ANALYZE {staged}")


def _sources(staged):
    """Where the grouped statements read the months' claims and cases: the staged tables hold exactly
    those months (no condition, so the planner counts their rows right: a condition repeated on them
    made it guess 4,000 rows for 800,000 and probe the persons one by one), or the tables themselves."""
    if staged:
        return {"claims": STAGED_CLAIMS, "cases": STAGED_CASES, "claim_months": "true", "case_months": "true",
                "cw": "1", "kw": "1"}
    return {
        "claims": CLAIMS_TABLE, "cases": CASES_TABLE, "cw": "1", "kw": "1",
        "claim_months": "c.visit_date BETWEEN %(first)s AND %(last)s "
                        "AND EXTRACT(MONTH FROM c.visit_date)::int = ANY(%(months)s)",
        "case_months": "k.discharge_date BETWEEN %(first)s AND %(last)s "
                       "AND EXTRACT(MONTH FROM k.discharge_date)::int = ANY(%(months)s)",
    }


def _lock_months(cursor, params):
    for month in params["months"]:
        # One writer of a month at a time (an import and an admin delete at once): the second waits
        # for the first to commit, then writes on top of what it wrote, instead of failing on the unique key.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"kpi_month:{params['year']}-{month}"])


def _write_month_rows(cursor, params, tables, adding, coverage_of=None):
    """The provider and population rows grouped from `tables`, inserted, or with `adding` added to the
    stored rows of the same key (a delta's signed rows); the caller has locked the months."""
    on_conflict = {
        "provider": "ON CONFLICT (year, month, level, unit_id) DO UPDATE SET "
                    + ", ".join(f"{c} = settlement_kpiprovidermonth.{c} + EXCLUDED.{c}" for c in _PROVIDER_COLUMNS),
        "population": 'ON CONFLICT (year, month, basis, unit_id, in_county, "primary") DO UPDATE SET '
                      + ", ".join(f"{c} = settlement_kpipopulationmonth.{c} + EXCLUDED.{c}"
                                  for c in ("visits", "stays", "resident_general_fund")),
    } if adding else {"provider": "", "population": ""}
    for level, parts in _PROVIDER_SQL.items():
        cursor.execute(
            f"""INSERT INTO settlement_kpiprovidermonth
                       (year, month, level, unit_id, claims, claim_total, claim_personal, referrals, cases, case_total,
                        case_personal, transfers, bed_day_cases, bed_days, bed_day_total, disease_cases, disease_exits)
                SELECT %(year)s, month, %(level)s, unit_id, SUM(claims), SUM(claim_total), SUM(claim_personal),
                       SUM(referrals), SUM(cases), SUM(case_total), SUM(case_personal), SUM(transfers),
                       SUM(bed_day_cases), SUM(bed_days), SUM(bed_day_total), 0, 0
                  FROM ({parts.format(**tables)}) p GROUP BY month, unit_id
                {on_conflict["provider"]}""",
            {**params, "level": level.value},
        )
    _refresh_disease_exits(cursor, params)
    _load_coverage(cursor, params["year"], coverage_of)
    cursor.execute(
        f"""INSERT INTO settlement_kpipopulationmonth
                   (year, month, basis, unit_id, in_county, "primary", visits, stays, resident_general_fund)
            SELECT %(year)s, month, CASE WHEN by_alliance THEN %(alliance)s ELSE %(county)s END, unit_id, in_county,
                   is_primary, SUM(visits), SUM(stays), SUM(resident_general_fund)
              FROM ({_POPULATION_PARTS.format(**tables)}) p
             WHERE unit_id IS NOT NULL
             GROUP BY month, by_alliance, unit_id, in_county, is_primary
            {on_conflict["population"]}""",
        {**params, "county": PopulationBasis.COUNTY.value, "alliance": PopulationBasis.ALLIANCE.value},
    )


def _refresh_months(cursor, year, months, staged=True):
    """Rewrite the month rows of (year, months). `staged`: read the months' claims and cases once
    into temporary tables first (a refresh of a few months); a whole year's rebuild reads the tables
    themselves, one scan per statement."""
    params = _params(year, months)
    _lock_months(cursor, params)
    cursor.execute("DELETE FROM settlement_kpiprovidermonth WHERE year = %(year)s AND month = ANY(%(months)s)", params)
    cursor.execute("DELETE FROM settlement_kpipopulationmonth WHERE year = %(year)s AND month = ANY(%(months)s)", params)
    if staged:
        _stage_months(cursor, params)
    _write_month_rows(cursor, params, _sources(staged), adding=False)
    if staged:
        cursor.execute(f"DROP TABLE {STAGED_CLAIMS}, {STAGED_CASES}")


_PROVIDER_COLUMNS = ("claims", "claim_total", "claim_personal", "referrals", "cases", "case_total", "case_personal",
                     "transfers", "bed_day_cases", "bed_days", "bed_day_total")


def _refresh_disease_exits(cursor, params):
    """Per-disease cases (the one classification of inpatient_common) and their approved exits, by
    discharge month, into the provider rows: a per-disease case is a case, so its row exists already
    and ON CONFLICT fills the two columns (the INSERT branch only keeps the statement total)."""
    exited = list(  # as alliances.kpis.disease_exit_rate reads them (exited_case_ids), for these months
        DiseaseExitRequest.objects.filter(
            status=RequestStatus.APPROVED, case__discharge_date__range=(params["first"], params["last"]),
        ).values_list("case_id", flat=True)
    )
    units = {
        ProviderLevel.INSTITUTION: ("k.institution_id", ""),
        ProviderLevel.ALLIANCE: ("m.alliance_id", _MEMBER_ON.format(t="k", day="discharge_date")),
    }
    zeros = ", ".join("0" for _ in _PROVIDER_COLUMNS)
    for level, (unit, join) in units.items():
        cursor.execute(
            f"""INSERT INTO settlement_kpiprovidermonth
                       (year, month, level, unit_id, {', '.join(_PROVIDER_COLUMNS)}, disease_cases, disease_exits)
                SELECT %(year)s, EXTRACT(MONTH FROM k.discharge_date)::int, %(level)s, {unit}, {zeros},
                       COUNT(*), COUNT(*) FILTER (WHERE k.id = ANY(%(exited)s::bigint[]))
                  FROM ({classified_cases_sql(DISEASE)}) k {join}
                 WHERE EXTRACT(MONTH FROM k.discharge_date)::int = ANY(%(months)s)
                 GROUP BY 2, 4
                ON CONFLICT (year, month, level, unit_id) DO UPDATE
                   SET disease_cases = EXCLUDED.disease_cases, disease_exits = EXCLUDED.disease_exits""",
            {**params, "level": level.value, "exited": exited, "date_from": params["first"], "date_to": params["last"]},
        )


def _refresh_year_figures(cursor, year):
    """Insured and signed persons per unit (the coverage table of the year is loaded already)."""
    KpiUnitYear.objects.filter(year=year).delete()
    cursor.execute(
        f"""INSERT INTO settlement_kpiunityear (year, level, unit_id, insured, signed)
            SELECT %(year)s, %(county)s, county_id, COUNT(*), 0 FROM contracts_insuredperson
             WHERE status = %(active)s AND county_id IS NOT NULL GROUP BY county_id
            UNION ALL
            SELECT %(year)s, %(alliance)s, alliance_id, COUNT(*), 0 FROM {COVERAGE_TABLE}
             WHERE status = %(active)s GROUP BY alliance_id""",
        {"year": year, "county": UnitLevel.COUNTY.value, "alliance": UnitLevel.ALLIANCE.value,
         "active": PersonStatus.ACTIVE.value},
    )
    # 签约率's numerator has its own rules (contract in force on 31 December, distinct persons per
    # unit): the one selector alliances.kpis has for it, grouped per level, written as rows.
    for level in (UnitLevel.COUNTY, UnitLevel.ALLIANCE, UnitLevel.INSTITUTION):
        signed = kpis.signed_persons(year, level.value)
        existing = set(KpiUnitYear.objects.filter(year=year, level=level).values_list("unit_id", flat=True))
        KpiUnitYear.objects.bulk_create(
            [KpiUnitYear(year=year, level=level, unit_id=pk, signed=n) for pk, n in signed.items() if pk not in existing]
        )
        KpiUnitYear.objects.bulk_update(
            [KpiUnitYear(pk=row_pk, signed=signed[unit]) for row_pk, unit in
             KpiUnitYear.objects.filter(year=year, level=level, unit_id__in=existing & set(signed)).values_list("pk", "unit_id")],
            ["signed"],
        )


def refresh_months(year, months):
    """Rewrite the month rows of (year, months) from the claims and cases; inside the caller's
    transaction when there is one (an import's landing), so they commit or roll back with it."""
    months = sorted({int(m) for m in months})
    if not months:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        _refresh_months(cursor, year, months)


def rebuild_year(year):
    """Every aggregate of the year, from scratch; returns the seconds it took."""
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        _refresh_months(cursor, year, range(1, 13), staged=False)
        _refresh_year_figures(cursor, year)
        seconds = Decimal(str(round(time.monotonic() - started, 2)))
        KpiAggregateYear.objects.update_or_create(year=year, defaults={"built_at": timezone.now(), "seconds": seconds})
    return seconds


# --- After an import or an admin change: deltas ---------------------------------------------

_DAY_COLUMN = {CLAIMS_TABLE: "visit_date", CASES_TABLE: "discharge_date"}
# What the grouped statements read of a claim and a case (the staged months read the same).
_DELTA_COLUMNS = {
    CLAIMS_TABLE: "institution_id, person_id, visit_date, visit_type, total_cost, personal_paid, fund_paid, referral",
    CASES_TABLE: "institution_id, person_id, admission_date, discharge_date, total_cost, personal_paid, transferred, "
                 "bed_day_category",
}
# Past this many persons in one delta, the coverage of the whole city is cheaper than theirs one by one.
COVERAGE_BY_PERSON_LIMIT = 200_000
# Past this many rows landed by one import, rewriting its months costs less than their difference
# (a city's whole month: 13 s rewritten, 22 s as a delta, on a loaded host).
DELTA_ROW_LIMIT = 200_000


class KpiDelta:
    """One change of claims or cases, applied to the month rows as a difference, not a month rewrite.

    Every figure of a month row is a count or a sum, so the rows of a change are its rows as they are
    now (+1) and as they were (−1): `subtract` takes rows before they change or go, `add` rows as they
    are after, and `apply` groups the signed rows with the very statements of a month refresh and adds
    the result to the stored rows (ON CONFLICT … + EXCLUDED), dropping rows left with nothing. A
    hospital's upload of a thousand claims then costs those claims, not a rewrite of the city's month
    (20 s of staging and coverage at city scale). 病种 columns are a classification, not a sum: the
    months a delta touches get theirs recounted from the year's per-disease cases.

    Like a month refresh, a delta reads persons, memberships and institutions as they are now; after
    those change, `rebuild_kpi_aggregates` is what brings the year back in line (see the top of this module).
    Tables without KPI figures: no-op.
    """

    def __init__(self, table):
        self.table = table
        self.day = _DAY_COLUMN.get(table)
        suffix = uuid.uuid4().hex[:12]
        self.tables = {CLAIMS_TABLE: f"kpi_delta_claims_{suffix}", CASES_TABLE: f"kpi_delta_cases_{suffix}"}
        self.rewrite = set()  # (year, month)s to rewrite whole instead (a large import)

    def _ensure(self, cursor):
        # Every call, not once: a savepoint rolled back (an import's chunk landed again) takes a table
        # created inside it away.
        for table, delta in self.tables.items():
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {delta} ON COMMIT DROP AS "
                f"SELECT {_DELTA_COLUMNS[table]}, 0 AS sign FROM {table} WITH NO DATA"
            )

    def _put(self, cursor, rows_sql, params, sign):
        if self.day is None:
            return
        self._ensure(cursor)
        cursor.execute(
            f"INSERT INTO {self.tables[self.table]} SELECT {_DELTA_COLUMNS[self.table]}, {sign} FROM ({rows_sql}) r",
            params,
        )

    def subtract(self, cursor, rows_sql, params=()):
        """The rows `rows_sql` selects (the table's columns), as they are before they change or go."""
        self._put(cursor, rows_sql, params, -1)

    def add(self, cursor, rows_sql, params=()):
        """The rows `rows_sql` selects, as they are after the change."""
        self._put(cursor, rows_sql, params, 1)

    def add_landed(self, cursor, landed_at):
        """The rows an import created or changed: those with a history row of its timestamp."""
        if self.day is None or landed_at is None:
            return
        history = f"settlement_historical{self.table.removeprefix('settlement_')}"
        cursor.execute(f"SELECT count(*) FROM {history} WHERE history_date = %s", [landed_at])
        if cursor.fetchone()[0] > DELTA_ROW_LIMIT:
            cursor.execute(
                f"SELECT DISTINCT EXTRACT(YEAR FROM {self.day})::int, EXTRACT(MONTH FROM {self.day})::int "
                f"FROM {history} WHERE history_date = %s", [landed_at],
            )
            self.rewrite.update(cursor.fetchall())
            return
        self.add(cursor, f"SELECT t.* FROM {self.table} t WHERE t.id IN "
                         f"(SELECT h.id FROM {history} h WHERE h.history_date = %s)", [landed_at])

    def apply(self, cursor):
        if self.day is None:
            return
        self._ensure(cursor)
        claims, cases = self.tables[CLAIMS_TABLE], self.tables[CASES_TABLE]
        delta, day = self.tables[self.table], self.day
        cursor.execute(f"ANALYZE {delta}")
        cursor.execute(f"SELECT DISTINCT EXTRACT(YEAR FROM {day})::int, EXTRACT(MONTH FROM {day})::int FROM {delta}")
        by_year = {}
        for year, month in cursor.fetchall():
            by_year.setdefault(year, set()).add(month)
        if self.rewrite:
            # The rows are in the tables now: the months they left and arrive in are rewritten from there.
            for year, month in self.rewrite:
                by_year.setdefault(year, set()).add(month)
            cursor.execute(f"DROP TABLE {claims}, {cases}")
            for year, months in sorted(by_year.items()):
                _refresh_months(cursor, year, months)
            return
        persons = f"SELECT person_id FROM {claims} UNION SELECT person_id FROM {cases}"
        cursor.execute(f"SELECT count(*) FROM ({persons}) p")
        coverage_of = persons if cursor.fetchone()[0] <= COVERAGE_BY_PERSON_LIMIT else None
        tables = {**_sources(staged=False), "claims": claims, "cases": cases, "cw": "c.sign", "kw": "k.sign"}
        for year, months in sorted(by_year.items()):
            params = _params(year, months)
            _lock_months(cursor, params)
            _zero_disease(cursor, params)
            _write_month_rows(cursor, params, tables, adding=True, coverage_of=coverage_of)
            cursor.execute(
                "DELETE FROM settlement_kpiprovidermonth WHERE year = %(year)s AND month = ANY(%(months)s) "
                "AND claims = 0 AND cases = 0 AND disease_cases = 0", params,
            )
            cursor.execute(
                "DELETE FROM settlement_kpipopulationmonth WHERE year = %(year)s AND month = ANY(%(months)s) "
                "AND visits = 0 AND stays = 0", params,
            )
        cursor.execute(f"DROP TABLE {claims}, {cases}")


def refresh_disease_months(dates):
    """Recount the 病种 columns of the months of these discharge dates (an approved exit request)."""
    by_year = {}
    for day in dates:
        by_year.setdefault(day.year, set()).add(day.month)
    with transaction.atomic(), connection.cursor() as cursor:
        for year, months in sorted(by_year.items()):
            params = _params(year, months)
            _lock_months(cursor, params)
            _zero_disease(cursor, params)
            _refresh_disease_exits(cursor, params)


def _zero_disease(cursor, params):
    """病种 columns are recounted, not added to: a unit whose last per-disease case left has none."""
    cursor.execute(
        "UPDATE settlement_kpiprovidermonth SET disease_cases = 0, disease_exits = 0 "
        "WHERE year = %(year)s AND month = ANY(%(months)s) AND (disease_cases <> 0 OR disease_exits <> 0)",
        params,
    )
