"""Which alliance covers an insured person in a year (SPEC §6.4, "Coverage").

Every person is attributed to exactly one alliance of their county of insurance, so no claim counts
for two alliances:
- by contract: the alliance of the member institution holding the person's verified contract in
  force on 1 January (else the one they first held during the year), when that member belongs, on
  that day, to an alliance of the person's own county;
- else by default: the county's only alliance, or, where the county has several, the one flagged
  `is_default` (validated in alliances.models).
A county without any alliance covers nobody.

One SQL statement, set-based; callers join it to claims or group it by alliance. Its two
positional parameters are the first and last day of the year (`coverage_params`).
"""
import datetime

from django.db import connection
from django.db.models.expressions import RawSQL

_COVERAGE = """
    WITH bounds AS (SELECT %s::date AS first_day, %s::date AS last_day
    ), county_default AS (
        SELECT county_id,
               CASE WHEN COUNT(*) = 1 THEN MIN(id) ELSE MIN(id) FILTER (WHERE is_default) END AS alliance_id
          FROM alliances_alliance
         GROUP BY county_id
    ), first_contract AS (
        SELECT DISTINCT ON (k.person_id) k.person_id, k.institution_id,
               GREATEST(k.start, b.first_day) AS on_day
          FROM contracts_contract k CROSS JOIN bounds b
         WHERE k.verified_on IS NOT NULL AND k.start <= b.last_day
           AND (k."end" IS NULL OR k."end" >= b.first_day){contracts_of}
         ORDER BY k.person_id, GREATEST(k.start, b.first_day), k.start, k.id
    ), by_contract AS (
        SELECT fc.person_id, a.id AS alliance_id
          FROM first_contract fc
          JOIN contracts_insuredperson p ON p.id = fc.person_id
          JOIN alliances_membership m ON m.institution_id = fc.institution_id AND m.joined_on <= fc.on_day
               AND (m.left_on IS NULL OR m.left_on >= fc.on_day)
          JOIN alliances_alliance a ON a.id = m.alliance_id AND a.county_id = p.county_id
    )
    SELECT p.id AS person_id, p.insurance_type, p.county_id, p.status,
           COALESCE(bc.alliance_id, d.alliance_id) AS alliance_id,
           bc.alliance_id IS NOT NULL AS by_contract
      FROM contracts_insuredperson p
      LEFT JOIN by_contract bc ON bc.person_id = p.id
      LEFT JOIN county_default d ON d.county_id = p.county_id
     WHERE COALESCE(bc.alliance_id, d.alliance_id) IS NOT NULL{persons_of}
"""
COVERAGE_SQL = _COVERAGE.format(contracts_of="", persons_of="")


def coverage_of_sql(persons):
    """COVERAGE_SQL for some persons only: `persons` is an SQL text selecting their ids. The
    restriction is written into the contracts' scan as well (the planner does not push a condition on
    the result down through DISTINCT ON), so a few thousand persons cost their contracts' index
    probes, not a pass over every contract of the city."""
    return _COVERAGE.format(
        contracts_of=f"\n           AND k.person_id IN ({persons})", persons_of=f"\n       AND p.id IN ({persons})",
    )


def coverage_params(year):
    return [datetime.date(year, 1, 1), datetime.date(year, 12, 31)]


def covered_persons(year, alliance_id, insurance_type):
    """A subquery of the ids of the persons of one insurance type the alliance covers in the year,
    for `person_id__in=` (the claims behind an alliance's A)."""
    return RawSQL(
        f"SELECT cov.person_id FROM ({COVERAGE_SQL}) cov WHERE cov.alliance_id = %s AND cov.insurance_type = %s",
        (*coverage_params(year), alliance_id, insurance_type),
    )


def coverage_counts(year, alliance_ids, insurance_type):
    """alliance id → (persons covered by contract, persons covered by default) of one insurance type."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT cov.alliance_id,
                       COUNT(*) FILTER (WHERE cov.by_contract), COUNT(*) FILTER (WHERE NOT cov.by_contract)
                  FROM ({COVERAGE_SQL}) cov
                 WHERE cov.alliance_id = ANY(%s::bigint[]) AND cov.insurance_type = %s
                 GROUP BY cov.alliance_id""",
            [*coverage_params(year), list(alliance_ids), insurance_type],
        )
        found = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    return {pk: found.get(pk, (0, 0)) for pk in alliance_ids}
