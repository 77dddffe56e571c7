"""Pre-aggregates of the DRG indices (issue 16): the page reads a few hundred rows, not the year's cases.

`rebuild_year` runs drg.indices' own statement once for the whole city at every level of the page
(institution, pool, per group, per month) into DrgIndexRow: one CREATE TABLE … AS (which, unlike an
INSERT … SELECT, may scan the cases in parallel) and one INSERT … SELECT, in one transaction, so a
reader sees the old year or the new one, never half. Three doors, one code path: a DRG run that
finishes computing (engine.services.finish_run, after its commit), `manage.py rebuild_drg_analysis
--year Y` and the Celery task `rebuild_drg_analysis_task`.

`indices` is drg.indices read from those rows. They are used only while they still stand on what
the live figures would (`is_fresh`: the same latest DRG run and the same audit-policy thresholds);
otherwise `read_indices` computes live and the page says why it is slower. Cases imported or edited
after the run change the live figures too: the next DRG run, or a rebuild, brings the rows level.
"""
import time
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from alliances.models import Institution
from settlement.engine.schemes import drg as drg_scheme
from settlement.engine.schemes.inpatient_common import roomy

from . import drg
from .models import DrgAnalysisYear, DrgIndexRow

LEVELS = tuple(drg.SETS)
BUILD_TABLE = "drg_index_build"
FIGURES = ("cases", "grouped_cases", "groups", "cmi", "cost_index", "time_index", "low_risk_cases",
           "low_risk_deaths", "high_cases", "low_cases", "total_cost", "los_days", "points", "fund_paid",
           "personal_paid")


def _level_case():
    """The statement's GROUPING() flags → the level name, as drg._level_of reads them."""
    keys = drg._KEYS
    arms = []
    for name, columns in drg.SETS.items():
        condition = " AND ".join(f"g_{k} = {0 if k in columns else 1}" for k in keys)
        arms.append(f"WHEN {condition} THEN '{name}'")
    return "CASE " + " ".join(arms) + " END"


def rebuild_year(year) -> Decimal:
    """Replace the year's rows from the live statement; returns the seconds it took."""
    started = time.monotonic()
    the_basis = drg.basis(year)
    sql, query = drg._statement(year, the_basis.params, LEVELS, the_basis.thresholds)
    pool_from, pool_expr = drg_scheme.pool_code_sql()
    columns = ", ".join(FIGURES)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('drg_index_rebuild'), %s)", [year])
        roomy(cursor)
        cursor.execute(f"DROP TABLE IF EXISTS {BUILD_TABLE}")
        cursor.execute(f"CREATE TEMP TABLE {BUILD_TABLE} ON COMMIT DROP AS {sql}", query)
        cursor.execute("DELETE FROM settlement_drgindexrow WHERE year = %s", [year])
        cursor.execute(f"""
            INSERT INTO settlement_drgindexrow (year, level, institution_id, pool_code, drg_code, month, {columns})
            SELECT %(year)s, {_level_case()}, b.institution_id, COALESCE(b.pool_code, p.pool_code), b.drg_code,
                   b.month, b.cases, b.grouped_cases, b.groups, ROUND(b.cmi, 4), ROUND(b.cost_index, 4),
                   ROUND(b.time_index, 4), b.low_risk_cases, b.low_risk_deaths, b.high_cases, b.low_cases,
                   b.total_cost, b.los_days, b.points, b.fund_paid, b.personal_paid
              FROM {BUILD_TABLE} b
              LEFT JOIN (SELECT i.id, {pool_expr} AS pool_code FROM alliances_institution i {pool_from}) p
                ON p.id = b.institution_id""", {"year": year, "pool_mode": the_basis.params.pool_mode})
        # Fresh statistics, or the planner takes the new rows for none and the page's reads slow down.
        cursor.execute("ANALYZE settlement_drgindexrow")
        seconds = Decimal(str(round(time.monotonic() - started, 2)))
        DrgAnalysisYear.objects.update_or_create(year=year, defaults={
            "run_id": the_basis.run.pk if the_basis.run else None, "thresholds": the_basis.thresholds.as_json(),
            "built_at": timezone.now(), "seconds": seconds,
        })
    return seconds


def is_fresh(the_basis) -> bool:
    """Rows exist for the year and stand on the basis the live figures would use."""
    built = DrgAnalysisYear.objects.filter(year=the_basis.year).first()
    return (built is not None and built.run_id == (the_basis.run.pk if the_basis.run else None)
            and built.thresholds == the_basis.thresholds.as_json())


def indices(year, sets, *, pool_code=None, institution_ids=None, the_basis=None) -> list[drg.Indices]:
    """drg.indices from the pre-aggregates (whole-city rows; a pool or some institutions picked out)."""
    the_basis = the_basis or drg.basis(year)
    rows = DrgIndexRow.objects.filter(year=year, level__in=list(sets))
    if pool_code is not None:
        rows = rows.filter(pool_code=pool_code)
    if institution_ids is not None:
        rows = rows.filter(institution_id__in=list(institution_ids))
    fields = ("level", "institution_id", "pool_code", "drg_code", "month", *FIGURES)
    return drg.from_rows(list(rows.values(*fields)), the_basis)


def read_indices(year, sets, *, pool_code=None, the_basis=None) -> tuple[list[drg.Indices], bool]:
    """(indices, from the pre-aggregates?): the rows when fresh, else the live statement."""
    the_basis = the_basis or drg.basis(year)
    if is_fresh(the_basis):
        return indices(year, sets, pool_code=pool_code, the_basis=the_basis), True
    return drg.indices(year, sets, pool_code=pool_code, the_basis=the_basis), False


def pool_codes(year, region_code=None, institution_ids=None) -> list[str]:
    """drg.pool_codes from the pre-aggregates: the pools of the institutions (in the region, or
    among `institution_ids`) that have rows in the year."""
    rows = DrgIndexRow.objects.filter(year=year, level="institution")
    if region_code is not None:
        institutions = Institution.objects.filter(Q(county__code=region_code) | Q(county__parent__code=region_code))
        rows = rows.filter(institution_id__in=institutions.values("pk"))
    if institution_ids is not None:
        rows = rows.filter(institution_id__in=list(institution_ids))
    return sorted(set(rows.values_list("pool_code", flat=True)))
