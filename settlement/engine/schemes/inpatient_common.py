"""What the three inpatient schemes share (SPEC §3, §6.5–§6.7).

An inpatient case goes to exactly one scheme, first match wins:
1. 床日类别 set                                              → ``bed_day`` (§6.6)
2. principal diagnosis (+ main operation) has a per-disease
   standard for the institution's level and the discharge year → ``disease`` (§6.7)
3. otherwise                                                  → ``drg`` (§6.5)

The rule lives in ONE place, `SCHEME_PREDICATES` + `classified_cases_sql(scheme)`, that every scheme's
gather selects from, so the three schemes can never disagree on where a case belongs (a case counted
twice, or by nobody, would pay money twice or not at all). The standard is looked up by the case's own
discharge year, which lets a query span a year boundary (the DRG readmission rule looks ten days into
the next year).

Per-disease standard matching: a standard whose 主手术编码 equals the case's main operation wins; a
standard with an empty 主手术编码 matches any operation (including none) when no exact one exists.
Matching is a hash join on (diagnosis, institution) with the year and operation as a join filter, so
that 500,000 cases stay one pass (see `_APPLIES`).

Exited per-disease cases (退出按病种付费, approved per case) stay in the ``disease`` scheme's unit: they
are paid by item, i.e. their 统筹支付 counts both in A and in E (the standard no longer applies), so
they leave the per-disease payment but not the institution's statement. Which cases have exited is a
plain input (a set of case ids) so that the exit-request workflow can supply it later.
"""
import datetime

from django.db import connection, transaction

from ..sql import roomy

BED_DAY = "bed_day"
DISEASE = "disease"
DRG = "drg"


class SchemeInputError(ValueError):
    """A missing standard or budget that makes a scheme's figures meaningless; stops the run.

    The message is Chinese because it is shown to bureau staff as the run's failure reason.
    """


def length_of_stay(admission: datetime.date, discharge: datetime.date) -> int:
    """SPEC §3: discharge − admission in days, at least 1 (a same-day stay counts one day)."""
    return max(1, (discharge - admission).days)


# Standards expanded to the institutions of their level, restricted to the years of the date range, so
# that a case finds its standard by (diagnosis, institution) without joining every case to its
# institution: that join cost more than the rest of the classification, for the few cases whose
# diagnosis has a standard at all.
_STANDARDS_SQL = """(SELECT ds.year, d.code, ds.main_operation, ds.amount, ds.disease_id, si.id AS institution_id
                       FROM settlement_diseasestandard ds
                       JOIN contracts_disease d ON d.id = ds.disease_id
                       JOIN alliances_institution si ON si.level = ds.level
                      WHERE ds.year BETWEEN EXTRACT(YEAR FROM %(date_from)s::date)
                                        AND EXTRACT(YEAR FROM %(date_to)s::date))"""

# A standard `s` applies to case `c`. Only the diagnosis and the institution are equalities the planner
# may hash on; the year and operation sit inside `IS TRUE`, which keeps them a join filter, evaluated
# only for the few cases that matched on the hash keys.
_APPLIES = """{s}.code = c.principal_diagnosis AND {s}.institution_id = c.institution_id
              AND ({s}.year = EXTRACT(YEAR FROM c.discharge_date)
                   AND ({s}.main_operation = c.main_operation OR {s}.main_operation = '')) IS TRUE"""

# The precedence of SPEC §3, once. Each scheme's gather filters with its own predicate (rather than on
# the CASE below), because PostgreSQL cannot estimate a filter on a CASE expression and then plans
# 500,000 rows as if they were a thousand.
_HAS_STANDARD = f"EXISTS (SELECT 1 FROM {_STANDARDS_SQL} s WHERE {_APPLIES.format(s='s')})"
SCHEME_PREDICATES = {
    BED_DAY: "c.bed_day_category <> ''",
    DISEASE: f"c.bed_day_category = '' AND {_HAS_STANDARD}",
    DRG: f"c.bed_day_category = '' AND NOT {_HAS_STANDARD}",
}


def classified_cases_sql(scheme: str | None = None) -> str:
    """The cases discharged in [%(date_from)s, %(date_to)s] with the columns the inpatient schemes need,
    the matched per-disease standard and the scheme; only one scheme's cases when `scheme` is given."""
    # The matched standard prefers an exact operation over an empty one; a DRG or bed-day gather never
    # reads it, so those skip the two joins.
    with_standard = scheme in (None, DISEASE)
    standard_columns = (
        "COALESCE(ds_exact.amount, ds_any.amount) AS disease_standard, "
        "COALESCE(ds_exact.disease_id, ds_any.disease_id) AS disease_id"
        if with_standard else "NULL::numeric AS disease_standard, NULL::bigint AS disease_id"
    )
    standard_joins = f"""
      LEFT JOIN {_STANDARDS_SQL} ds_exact
             ON {_APPLIES.format(s='ds_exact')} AND (ds_exact.main_operation <> '') IS TRUE
      LEFT JOIN {_STANDARDS_SQL} ds_any
             ON {_APPLIES.format(s='ds_any')} AND (ds_any.main_operation = '') IS TRUE""" if with_standard else ""
    restriction = f"AND {SCHEME_PREDICATES[scheme]}" if scheme else ""
    # Unrestricted, the joined standard tells the scheme (equivalent to the EXISTS, without a subplan
    # per row).
    scheme_column = f"'{scheme}'::text" if scheme else f"""CASE WHEN {SCHEME_PREDICATES[BED_DAY]} THEN '{BED_DAY}'
                WHEN COALESCE(ds_exact.amount, ds_any.amount) IS NOT NULL THEN '{DISEASE}'
                ELSE '{DRG}' END"""
    return f"""
    SELECT c.id, c.institution_id, c.person_id, c.serial,
           c.admission_date, c.discharge_date,
           GREATEST(1, c.discharge_date - c.admission_date) AS los,
           c.principal_diagnosis, c.main_operation, c.drg_code,
           c.total_cost, c.fund_paid, c.personal_paid,
           c.incomplete_stay, c.new_technology, c.bed_day_category, c.discharge_mode,
           {standard_columns}, {scheme_column} AS scheme
      FROM settlement_inpatientcase c {standard_joins}
     WHERE c.discharge_date BETWEEN %(date_from)s AND %(date_to)s {restriction}
"""


CLASSIFIED_CASES_SQL = classified_cases_sql()


def region_filter_sql(county_code: str, parent_code: str) -> str:
    """A WHERE condition restricting rows to a run's region: a county code, or the city code (= every
    county under it). Parameter: %(region_code)s (NULL = whole city)."""
    return f"(%(region_code)s::text IS NULL OR {county_code} = %(region_code)s OR {parent_code} = %(region_code)s)"


class InpatientRecovery:
    """Scheme mixin: a case was paid by the institution whose statement of this scheme it was assigned to
    (SPEC §9 违规扣款); found by case id through the same classification as the gather."""

    def recovered_cases(self, ctx, params, unit_codes, case_ids):
        with connection.cursor() as cursor:
            cursor.execute(f"""
                SELECT k.id, i.code FROM ({classified_cases_sql(self.scheme)}) k
                  JOIN alliances_institution i ON i.id = k.institution_id
                 WHERE k.id = ANY(%(case_ids)s) AND i.code = ANY(%(unit_codes)s)
            """, {"date_from": ctx.first_day, "date_to": ctx.last_day,
                  "case_ids": list(case_ids), "unit_codes": list(unit_codes)})
            return dict(cursor.fetchall())


REGIONS_SQL = """
    SELECT r.id, r.code, r.name, COALESCE(p.code, r.code) AS city_code, p.code AS parent_code
      FROM alliances_region r LEFT JOIN alliances_region p ON p.id = r.parent_id
"""


def case_schemes(date_from: datetime.date, date_to: datetime.date) -> dict[int, str]:
    """case id → scheme for the cases discharged in the range (for pages and checks, not the hot path)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, scheme FROM ({CLASSIFIED_CASES_SQL}) k", {"date_from": date_from, "date_to": date_to},
        )
        return dict(cursor.fetchall())


def fetch_dicts(sql: str, params, *, year_scale=False) -> list[dict]:
    """Rows as dicts; `year_scale` for statements over a whole year of cases (see `roomy`)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if year_scale:
            roomy(cursor)
        cursor.execute(sql, params)
        names = [col[0] for col in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
