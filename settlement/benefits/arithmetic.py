"""The claim arithmetic of SPEC §6.8 in SQL, shared by the year's computation (services) and the
re-derivation of one person-year on a claim's or case's page (selectors): one text, two uses.

A statement is a list of named parts (`rulemap`, `flags`, …) and a final SELECT. The computation
makes the parts unlogged tables (read by parallel workers, unlike temporary tables) and keeps only
the rows whose 应付统筹 differs from 统筹支付; a derivation inlines them as CTEs restricted to one
person (the claims' and cases' (person, date) indexes serve it) and keeps every row.

Outpatient: a claim's rule, institution and place (in or out of the city) come from one hashed
`rulemap` keyed by (institution, 险种, 门诊类型, disease): a year's claims meet a table of a few
hundred thousand rows instead of four joins and a per-claim rule lookup. Under a rule without
deductible and without 年度限额 a claim's figure depends on nothing but itself (`_FREE`), so those
claims are never sorted; the others consume deductible and limit in (visit date, serial) order with
running sums (`_RUNNING`) — consumed by claim i = min(D, Σ≤i) − min(D, Σ<i), the same identity for
the limit over the claims' fund before the limit. Sums are in whole 分 as bigint; half-up to 分 is
(x·r + 5000) div 10000 with x ≥ 0 and r in basis points.

Inpatient: the deductible is per stay, less what the stay it is joined to by a referral charged —
that stay may lie in an earlier year, charged under that year's approved table; the limit is per
person-year in (discharge date, serial) order, by the same running sums.
"""
import dataclasses
import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection

from alliances.models import Institution, Region
from contracts.models import Disease, InsuranceType, InsuredPerson
from settlement.models import ApprovalStatus, InpatientCase, OutpatientClaim, VisitType

from .models import BenefitRule, BenefitTable, CareType, Referral, Relocation, UnmatchedFigure
from .params import REVOKING_FILINGS

TOLERANCE = "0.01"  # SPEC §9 BEN01: |统筹支付 − 应付统筹| > 0.01 元
TOLERANCE_CENTS = int(Decimal(TOLERANCE) * 100)


def _t(model):
    return connection.ops.quote_name(model._meta.db_table)


def table_names():
    return {
        "claim": _t(OutpatientClaim), "case": _t(InpatientCase), "inst": _t(Institution), "region": _t(Region),
        "person": _t(InsuredPerson), "disease": _t(Disease), "rule": _t(BenefitRule), "ref": _t(Referral),
        "reloc": _t(Relocation), "table": _t(BenefitTable), "unmatched": _t(UnmatchedFigure),
    }


def _bp(points):
    """Points (百分点) as basis points of the ratio: the table's ratios carry 2 decimals."""
    return int((Decimal(points) * 100).to_integral_value(ROUND_HALF_UP))


def sql_params(year, params, city, now):
    return {
        "year": year, "first": datetime.date(year, 1, 1), "last": datetime.date(year, 12, 31), "city": city,
        "out_days": params.out_referral_days, "window": params.referral_window_days, "tcm": params.tcm_primary_ratio,
        "down_bp": _bp(params.referral_down_points), "cross_bp": _bp(params.cross_county_points),
        "out_bp": _bp(params.out_of_city_points), "revoking": REVOKING_FILINGS, "now": now,
        "insurance_types": list(InsuranceType.values), "visit_types": list(VisitType.values),
        "approved": ApprovalStatus.APPROVED, "tolerance_c": TOLERANCE_CENTS, "person": None,
    }


# --- the parts -------------------------------------------------------------------------------

# The claims or cases of the persons with a relocation filing or a 下转 / 转外 referral, for their
# flags: person by person through the (person, date) index, never a scan of the year (OFFSET 0 keeps
# the planner from flattening it into a hash join over every claim). `day` is when referrals and
# relocation are judged (visit date; admission date).
_FLAG_ROWS = {
    CareType.OUTPATIENT: "SELECT x.id, x.institution_id, x.visit_date AS day FROM {claim} x "
                         "WHERE x.person_id = fp.person_id AND x.visit_date BETWEEN %(first)s AND %(last)s OFFSET 0",
    CareType.INPATIENT: "SELECT x.id, x.institution_id, x.admission_date AS day FROM {case} x "
                        "WHERE x.person_id = fp.person_id AND x.discharge_date BETWEEN %(first)s AND %(last)s OFFSET 0",
}

_FLAGS = """
WITH
  base AS (
    -- the institutions joined once to the claims or cases found (OFFSET 0), not inside the loop
    -- over the persons (there they were scanned once per person: 7 M rows for 7 k persons)
    SELECT c.id, c.person_id, c.institution_id, c.day, ir.code AS inst_code
    FROM (SELECT fp.person_id, c.id, c.institution_id, c.day
          FROM (SELECT person_id FROM {reloc} UNION SELECT person_id FROM {ref} WHERE direction IN ('下转', '转外')) fp
          CROSS JOIN LATERAL ({rows}) c
          {who} OFFSET 0) c
    JOIN {inst} i ON i.id = c.institution_id JOIN {region} ir ON ir.id = i.county_id
  ),
  revoked AS (
    SELECT person_id FROM {reloc} WHERE filed_on BETWEEN %(first)s AND %(last)s GROUP BY person_id
    HAVING count(*) >= %(revoking)s
  )
SELECT b.id, (b.person_id IN (SELECT person_id FROM revoked)) AS revoked,
  CASE WHEN b.person_id IN (SELECT person_id FROM revoked) THEN NULL ELSE (
    SELECT r.destination FROM {reloc} r
    WHERE r.person_id = b.person_id AND r.filed_on <= b.day AND (r.ended_on IS NULL OR r.ended_on >= b.day)
      AND starts_with(b.inst_code, regexp_replace(r.destination, '(00)+$', ''))
    ORDER BY r.filed_on DESC LIMIT 1) END AS relocated_to,
  EXISTS (SELECT 1 FROM {ref} r WHERE r.person_id = b.person_id AND r.direction = '转外'
          AND b.day BETWEEN r.referred_on AND r.referred_on + %(out_days)s) AS referred_out,
  EXISTS (SELECT 1 FROM {ref} r WHERE r.person_id = b.person_id AND r.direction = '下转'
          AND r.to_institution_id = b.institution_id
          AND b.day BETWEEN r.referred_on AND r.referred_on + %(window)s) AS referred_down
FROM base b
"""

# The most specific rule row of a (险种, level, 门诊类型, disease code): disease prefix, then 门诊类型.
_RULE = """
SELECT ru.id, ru.deductible, ru.ratio, ru.annual_limit FROM {rule} ru
WHERE ru.year = {year} AND ru.insurance_type = {insurance} AND ru.care_type = '{care}' AND ru.level = {level}
  AND ru.visit_type IN ('', {visit_type})
  AND (ru.disease_prefix = '' OR starts_with(upper({disease}), ru.disease_prefix))
ORDER BY (ru.disease_prefix <> '') DESC, length(ru.disease_prefix) DESC, (ru.visit_type <> '') DESC
LIMIT 1
"""

# Every (level, kind) class of institution × 险种 × 门诊类型 × disease (or none) with its rule: a
# few thousand rows, hashed once per worker.
_RULEMAP = """
SELECT k.level, k.kind, it.insurance_type, vt.visit_type, d.id AS disease_key, ru.id AS rule_id, ru.deductible,
  ru.ratio AS base_ratio, ru.annual_limit, (ru.ratio * 100)::int AS base_bp,
  COALESCE(ru.deductible > 0 OR ru.annual_limit IS NOT NULL, false) AS ordered
FROM (SELECT DISTINCT level, kind FROM {inst}) k
CROSS JOIN unnest(%(insurance_types)s::varchar[]) it(insurance_type)
CROSS JOIN unnest(%(visit_types)s::varchar[]) vt(visit_type)
CROSS JOIN (SELECT id, code FROM {disease} UNION ALL SELECT 0, '') d
LEFT JOIN LATERAL (""" + _RULE.format(
    rule="{rule}", year="%(year)s", insurance="it.insurance_type", care=CareType.OUTPATIENT.value,
    level="CASE WHEN %(tcm)s AND k.kind = '中医' THEN '基层' ELSE k.level END", visit_type="vt.visit_type",
    disease="d.code") + """) ru ON true
"""

# Each institution's class and place: in the city or not.
_PLACES = """
SELECT i.id, i.level, i.kind, i.county_id AS inst_county, NOT starts_with(ir.code, %(city)s) AS out_of_city
FROM {inst} i JOIN {region} ir ON ir.id = i.county_id
"""

# The ratio's modifiers in basis points, clamped to 0–100%.
_POINTS = """
  CASE WHEN {r}.referred_down THEN %(down_bp)s ELSE 0 END AS down_bp,
  CASE WHEN {r}.relocated_to IS NULL AND NOT {r}.out_of_city AND {r}.inst_county <> {r}.person_county
       THEN %(cross_bp)s ELSE 0 END AS cross_bp,
  CASE WHEN {r}.relocated_to IS NULL AND {r}.out_of_city AND ({r}.revoked OR NOT {r}.referred_out)
       THEN %(out_bp)s ELSE 0 END AS out_bp
"""

# Every person's county of insurance as one array indexed by person id (0 where no person has the
# id): a year's claims look it up by subscript instead of probing a hash of a million persons (a
# third of the claims statement's time at city scale). Identity ids are dense, so the array is built
# from the persons alone; with gaps each missing id gets a 0.
_PERSONS = """
SELECT CASE WHEN s.persons = s.top THEN (SELECT array_agg(p.county_id ORDER BY p.id) FROM {person} p)
  ELSE (SELECT array_agg(COALESCE(p.county_id, 0) ORDER BY g.id)
        FROM generate_series(1, s.top) g(id) LEFT JOIN {person} p ON p.id = g.id) END AS counties
FROM (SELECT count(*) AS persons, COALESCE(max(id), 0) AS top FROM {person}) s
"""

# The person's county: from the array (the year's computation), or by joining the person (a
# derivation: one person-year, or the tests' whole year). `[1:]` reads the stored array once into
# memory, so each subscript is not a detoast.
_PERSON_BY_ARRAY = ("(SELECT counties[1:] FROM {persons})[c.person_id]", "")
_PERSON_BY_JOIN = ("p.county_id", "JOIN {person} p ON p.id = c.person_id\n")

_OUT_BASE = """
SELECT c.id, c.person_id, c.institution_id, c.serial, c.visit_date AS day, c.visit_type,
  COALESCE(c.in_scope_cost, c.total_cost) AS in_scope, c.fund_paid, i.level, i.inst_county, i.out_of_city,
  {person_county} AS person_county, m.rule_id, m.deductible, m.base_ratio, m.base_bp, m.annual_limit,
  {flag_columns}
FROM {claims}
JOIN {places} i ON i.id = c.institution_id
JOIN {rulemap} m ON m.level = i.level AND m.kind = i.kind AND m.insurance_type = c.insurance_type
  AND m.visit_type = c.visit_type AND m.disease_key = COALESCE(c.disease_id, 0)
{person_join}{flag_join}WHERE c.visit_date BETWEEN %(first)s AND %(last)s {where}
"""

# The claims and their referral and relocation flags (claims, flag columns, flag join), three ways:
# * joined: every claim, its flags if it has any;
# * none: every claim as if it had no flag (the year's unsorted pass): constants, which the planner
#   folds out of the ratio's CASEs, and no join;
# * only: the claims with flags (a few per cent), each claim by its key, figured with its flags:
#   their rows from the unsorted pass are dropped (`UNFLAGGED`).
_FLAG_COLUMNS = ("COALESCE(f.revoked, false) AS revoked, f.relocated_to, COALESCE(f.referred_out, false) AS referred_out,\n"
                 "  COALESCE(f.referred_down, false) AS referred_down")
_CLAIM_FLAGS = {
    "joined": ("{claim} c", _FLAG_COLUMNS, "LEFT JOIN {flags} f ON f.id = c.id\n"),
    "none": ("{claim} c", "false AS revoked, NULL::varchar AS relocated_to, false AS referred_out, false AS referred_down", ""),
    "only": ("{flags} f CROSS JOIN LATERAL (SELECT * FROM {claim} x WHERE x.id = f.id OFFSET 0) c", _FLAG_COLUMNS, ""),
}

_RELOCATION_TEXT = """
  CASE WHEN {r}.relocated_to IS NOT NULL THEN '安置地' || {r}.relocated_to || '，按市内待遇'
       WHEN {r}.revoked AND {r}.out_of_city THEN '当年度备案2次及以上，异地安置待遇已取消'
       ELSE '' END
"""

# A claim under a rule without deductible and limit: fund = in-scope × ratio, nothing else.
_FREE = """
SELECT {collect}
FROM (SELECT b.*, (b.in_scope * 100)::bigint AS in_c, LEAST(10000, GREATEST(0, b.base_bp + x.down_bp - x.cross_bp - x.out_bp)) AS ratio_bp
      FROM (""" + _OUT_BASE + """) b
      CROSS JOIN LATERAL (SELECT """ + _POINTS.format(r="b") + """) x) e
CROSS JOIN LATERAL (SELECT (e.in_c * e.ratio_bp + 5000) / 10000 AS amount_c) a
"""

# One row for a statement over a year's claims: how many, the newest id, and the differing ones
# gathered by `benefit_collect` (array_append, combined by array_cat: a parallel aggregate, so each
# worker gathers its own share and only a few rows leave the workers). Migration 0016 makes the
# aggregate and the `benefit_claim_row` type.
_COLLECT = """
  count(*) AS claims, COALESCE(max(e.id), 0) AS last_id,
  benefit_collect(ROW(e.id, e.serial, e.institution_id, e.person_id, e.day, e.level, e.visit_type, e.in_scope,
                      e.fund_paid, {amount}, e.rule_id IS NULL)::benefit_claim_row)
    FILTER (WHERE e.rule_id IS NULL OR abs((e.fund_paid * 100)::bigint - {amount}) > %(tolerance_c)s) AS differing
"""

# The gathered claims of a collected row (`stage`), as stored figures.
OUT_STORED = """
SELECT r.id * 2, %(year)s, '门诊', r.id, NULL::bigint, r.serial, r.institution_id, r.person_id, r.day, r.level,
  r.visit_type, r.in_scope, r.fund_paid, (r.amount_c / 100.0)::numeric(16, 2),
  r.fund_paid - (r.amount_c / 100.0)::numeric(16, 2), CASE WHEN r.unruled THEN '无适用规则' ELSE '不一致' END,
  %(now)s::timestamptz
FROM {stage} s CROSS JOIN LATERAL unnest(s.differing) r
{unflagged}
"""
UNFLAGGED = "WHERE NOT EXISTS (SELECT 1 FROM {flags} f WHERE f.id = r.id)"

# Deductible and limit consumed in (visit date, serial) order within the person-year and rule.
_RUNNING = """
SELECT {columns}
FROM (
  SELECT l.*, CASE WHEN l.rule_id IS NULL THEN NULL WHEN l.lim_c IS NULL THEN l.before_c
                   ELSE LEAST(l.lim_c, l.fund_before_c + l.before_c) - LEAST(l.lim_c, l.fund_before_c) END AS amount_c
  FROM (
    SELECT f.*, (SUM(f.before_c) OVER w)::bigint - f.before_c AS fund_before_c
    FROM (
      SELECT d.*, ((d.in_c - d.ded_used_c) * d.ratio_bp + 5000) / 10000 AS before_c
      FROM (
        SELECT s.*, LEAST(s.ded_c, s.in_to_here) - LEAST(s.ded_c, s.in_to_here - s.in_c) AS ded_used_c
        FROM (
          SELECT c.*, (SUM(c.in_c) OVER w)::bigint AS in_to_here
          FROM (
            SELECT b.*, x.*, LEAST(10000, GREATEST(0, b.base_bp + x.down_bp - x.cross_bp - x.out_bp)) AS ratio_bp,
              (b.in_scope * 100)::bigint AS in_c, (b.deductible * 100)::bigint AS ded_c,
              (b.annual_limit * 100)::bigint AS lim_c
            FROM (""" + _OUT_BASE + """) b CROSS JOIN LATERAL (SELECT """ + _POINTS.format(r="b") + """) x
          ) c
          WINDOW w AS (PARTITION BY c.person_id, c.rule_id ORDER BY c.day, c.serial, c.id ROWS UNBOUNDED PRECEDING)
        ) s
      ) d
    ) f
    WINDOW w AS (PARTITION BY f.person_id, f.rule_id ORDER BY f.day, f.serial, f.id ROWS UNBOUNDED PRECEDING)
  ) l
) e
{where}
"""

_CENTS = "(({x}) / 100.0)::numeric(16, 2)"

# Everything the derivation of a claim shows.
_OUT_DERIVED = """
  e.id, '门诊'::varchar AS care_type, e.id AS claim_id, NULL::bigint AS case_id, e.serial, e.institution_id, e.person_id,
  e.day AS service_date, e.level, e.visit_type, e.in_scope, e.rule_id, e.deductible, NULL::bigint AS joined_case_id,
  NULL::numeric(16, 2) AS joined_deductible,
  CASE WHEN e.rule_id IS NULL THEN NULL ELSE """ + _CENTS.format(x="e.ded_used_c") + """ END AS deductible_used,
  e.base_ratio, (e.down_bp / 100.0)::numeric(5, 2) AS referral_points, (e.cross_bp / 100.0)::numeric(5, 2) AS cross_county_points,
  (e.out_bp / 100.0)::numeric(5, 2) AS out_of_city_points, """ + _RELOCATION_TEXT.format(r="e") + """ AS relocation,
  CASE WHEN e.rule_id IS NULL THEN NULL ELSE (e.ratio_bp / 100.0)::numeric(5, 2) END AS ratio,
  """ + _CENTS.format(x="e.before_c") + """ AS before_limit, e.annual_limit,
  """ + _CENTS.format(x="e.lim_c - LEAST(e.lim_c, e.fund_before_c)") + """ AS limit_left,
  """ + _CENTS.format(x="e.amount_c") + """ AS expected, e.fund_paid,
  e.fund_paid - """ + _CENTS.format(x="e.amount_c") + """ AS difference
"""

# --- inpatient -------------------------------------------------------------------------------

_CASE_BASE = """
SELECT c.id, c.person_id, c.institution_id, c.serial, c.admission_date AS day, c.discharge_date,
  p.insurance_type, COALESCE(c.in_scope_cost, c.total_cost) AS in_scope, c.fund_paid, i.level,
  i.county_id AS inst_county, p.county_id AS person_county, c.principal_diagnosis AS disease_code,
  NOT starts_with(ir.code, %(city)s) AS out_of_city
FROM {case} c JOIN {inst} i ON i.id = c.institution_id JOIN {region} ir ON ir.id = i.county_id
  JOIN {person} p ON p.id = c.person_id
WHERE c.discharge_date BETWEEN %(first)s AND %(last)s {who}
"""

# The year's stays with their rule and ratio (few enough per year for a per-stay rule lookup).
_CASES = """
SELECT s.*, (LEAST(10000, GREATEST(0, (s.base_ratio * 100)::int + s.down_bp - s.cross_bp - s.out_bp)) / 100.0)::numeric(5, 2) AS ratio,
  LEAST(s.deductible, s.in_scope) AS own_charged
FROM (
  SELECT r.*, """ + _POINTS.format(r="r") + """
  FROM (
    SELECT b.*, COALESCE(f.revoked, false) AS revoked, f.relocated_to, COALESCE(f.referred_out, false) AS referred_out,
      COALESCE(f.referred_down, false) AS referred_down, ru.id AS rule_id, ru.deductible, ru.ratio AS base_ratio,
      ru.annual_limit
    FROM (""" + _CASE_BASE + """) b LEFT JOIN {flags} f ON f.id = b.id
    LEFT JOIN LATERAL (""" + _RULE.format(
    rule="{rule}", year="%(year)s", insurance="b.insurance_type", care=CareType.INPATIENT.value, level="b.level",
    visit_type="''", disease="b.disease_code") + """) ru ON true
  ) r
) s
"""

# Stays of earlier years a referral joins to one of this year's: the deductible they charged under
# their own year's approved table ("两次住院视同一次住院收取起付标准" across New Year).
_EARLIER = """
SELECT DISTINCT ON (a.id) a.id, a.person_id, a.institution_id, a.serial, a.discharge_date, ru.id AS rule_id,
  LEAST(ru.deductible, COALESCE(a.in_scope_cost, a.total_cost)) AS own_charged
FROM {cases} b
JOIN {ref} r ON r.person_id = b.person_id AND r.to_institution_id = b.institution_id
  AND b.day BETWEEN r.referred_on AND r.referred_on + %(window)s
JOIN {case} a ON a.person_id = r.person_id AND a.institution_id = r.from_institution_id
  AND a.discharge_date <= r.referred_on AND a.discharge_date < %(first)s
JOIN {inst} i ON i.id = a.institution_id JOIN {person} p ON p.id = a.person_id
JOIN LATERAL (""" + _RULE.format(
    rule="{rule}", year="extract(year FROM a.discharge_date)::int", insurance="p.insurance_type",
    care=CareType.INPATIENT.value, level="i.level", visit_type="''", disease="a.principal_diagnosis",
).replace("WHERE ru.year", "WHERE EXISTS (SELECT 1 FROM {table} t WHERE t.year = ru.year AND t.status = %(approved)s)\n  AND ru.year") + """) ru ON true
ORDER BY a.id
"""

# A stay joined by a referral to an earlier stay at the sending institution pays only the deductible
# difference; then the limit per person-year in discharge order.
_CASE_FIGURES = """
SELECT {columns}
FROM (
  SELECT l.*,
    CASE WHEN l.rule_id IS NULL THEN NULL
         WHEN l.annual_limit IS NULL THEN l.before_limit
         ELSE LEAST(l.annual_limit, l.fund_before + l.before_limit) - LEAST(l.annual_limit, l.fund_before) END AS expected,
    l.annual_limit - LEAST(l.annual_limit, l.fund_before) AS limit_left
  FROM (
    SELECT f.*, {fund_before} AS fund_before
    FROM (
      SELECT c.*, round((c.in_scope - c.ded_used) * c.ratio / 100, 2) AS before_limit
      FROM (
        SELECT b.*, j.case_id AS joined_case_id, j.charged AS joined_deductible,
          LEAST(b.in_scope, GREATEST(0, b.deductible - COALESCE(j.charged, 0))) AS ded_used
        FROM {cases} b LEFT JOIN (
          -- per stay the latest earlier stay at the sender of a referral it follows: hash joins over the
          -- few stays a referral reaches, not a lookup for every stay of the year
          SELECT DISTINCT ON (b.id) b.id, a.id AS case_id, a.own_charged AS charged
          FROM {cases} b
          JOIN {ref} r ON r.person_id = b.person_id AND r.to_institution_id = b.institution_id
            AND b.day BETWEEN r.referred_on AND r.referred_on + %(window)s
          JOIN (
            SELECT id, person_id, institution_id, discharge_date, own_charged FROM {cases} WHERE rule_id IS NOT NULL
            UNION ALL
            SELECT id, person_id, institution_id, discharge_date, own_charged FROM {earlier}
          ) a ON a.person_id = r.person_id AND a.institution_id = r.from_institution_id
            AND a.discharge_date <= r.referred_on AND a.id <> b.id
          ORDER BY b.id, a.discharge_date DESC, r.referred_on DESC, a.id DESC
        ) j ON j.id = b.id
      ) c
    ) f
    WINDOW w AS (PARTITION BY f.person_id, f.insurance_type, (f.rule_id IS NULL)
                 ORDER BY f.discharge_date, f.serial, f.id ROWS UNBOUNDED PRECEDING)
  ) l
) e
{where}
"""

_CASE_STORED = """
  e.id * 2 + 1, %(year)s, '住院', NULL::bigint, e.id, e.serial, e.institution_id, e.person_id, e.discharge_date,
  e.level, '', e.in_scope, e.fund_paid, e.expected, e.fund_paid - e.expected,
  CASE WHEN e.rule_id IS NULL THEN '无适用规则' ELSE '不一致' END, %(now)s::timestamptz
"""

_CASE_DERIVED = """
  e.id, '住院'::varchar AS care_type, NULL::bigint AS claim_id, e.id AS case_id, e.serial, e.institution_id, e.person_id,
  e.discharge_date AS service_date, e.level, ''::varchar AS visit_type, e.in_scope, e.rule_id, e.deductible,
  e.joined_case_id, e.joined_deductible, e.ded_used::numeric(16, 2) AS deductible_used, e.base_ratio,
  (e.down_bp / 100.0)::numeric(5, 2) AS referral_points, (e.cross_bp / 100.0)::numeric(5, 2) AS cross_county_points,
  (e.out_bp / 100.0)::numeric(5, 2) AS out_of_city_points, """ + _RELOCATION_TEXT.format(r="e") + """ AS relocation,
  e.ratio, e.before_limit::numeric(16, 2) AS before_limit, e.annual_limit, e.limit_left::numeric(16, 2) AS limit_left,
  e.expected::numeric(16, 2) AS expected, e.fund_paid, (e.fund_paid - e.expected)::numeric(16, 2) AS difference
"""

_DIFFERS = "WHERE e.rule_id IS NULL OR abs(e.fund_paid - e.{amount}) > %(tolerance_c)s / 100.0"


# --- statements ------------------------------------------------------------------------------

PARTS = ("places", "rulemap", "flags", "persons", "cases", "earlier")


@dataclasses.dataclass(frozen=True)
class Statement:
    """Named parts (each a SELECT) and the final SELECT that reads them by name."""

    parts: tuple
    final: str

    def inline(self):
        """One statement: the parts as CTEs (a derivation: one person, nothing written)."""
        ctes = ",\n".join(f"{name} AS MATERIALIZED ({sql})" for name, sql in self.parts)
        return f"WITH {ctes}\n{self.final}"


def names_for(parts=None):
    """Table names, and what each part is read as: its CTE name, or the table it was written to."""
    return {**table_names(), **{part: part for part in PARTS}, **(parts or {})}


def _who(person):
    return "AND c.person_id = %(person)s" if person else ""


def _flags(care_type, names, person):
    who = "WHERE fp.person_id = %(person)s" if person else ""
    return _FLAGS.format(rows=_FLAG_ROWS[care_type].format(**names), who=who, **names)


def outpatient_parts(names, person=False):
    return (
        ("places", _PLACES.format(**names)),
        ("rulemap", _RULEMAP.format(**names)),
        ("flags", _flags(CareType.OUTPATIENT, names, person)),
    )


def computation_parts(names):
    """The year's computation's parts: the derivation's, and the persons' counties as an array."""
    return (*outpatient_parts(names), ("persons", _PERSONS.format(**names)))


def _base(text, by_array, flags="joined"):
    county, person_join = _PERSON_BY_ARRAY if by_array else _PERSON_BY_JOIN
    claims, columns, flag_join = _CLAIM_FLAGS[flags]
    return (text.replace("{person_county}", county).replace("{person_join}", person_join)
            .replace("{claims}", claims).replace("{flag_columns}", columns).replace("{flag_join}", flag_join))


def _running(names, columns, base_where, outer_where, by_array):
    # _RUNNING holds two {where} slots: the base's filter, then the outer one.
    text = _RUNNING.replace("{where}", base_where, 1).replace("{where}", outer_where, 1)
    return _base(text, by_array).format(columns=columns, **names)


def _free(names, flags):
    return _base(_FREE, by_array=True, flags=flags).format(
        collect=_COLLECT.format(amount="a.amount_c"), where="AND NOT m.ordered", **names)


def outpatient_free(names):
    """Claims under rules without deductible and limit, every one as if it had no flag: counted, the
    differing gathered (no sort, no join to the flags)."""
    return _free(names, "none")


def outpatient_flagged(names):
    """The claims of `outpatient_free` that have flags, figured with them: the differing gathered."""
    return _free(names, "only")


def outpatient_running(names):
    """Claims under rules with a deductible or a limit: counted, the differing gathered."""
    return _running(names, _COLLECT.format(amount="e.amount_c"), "AND m.ordered", "", by_array=True)


def outpatient_derived(names, person=True):
    return Statement(outpatient_parts(names, person),
                     _running(names, _OUT_DERIVED, _who(person), "ORDER BY e.day, e.serial, e.id", by_array=False))


def inpatient_parts(names, person=False):
    return (
        ("flags", _flags(CareType.INPATIENT, names, person)),
        ("cases", _CASES.format(who=_who(person), **names)),
        ("earlier", _EARLIER.format(**names)),
    )


# The fund of the person-year's earlier stays, for the limit. Where no stay of the year has a limit
# it is read nowhere (every branch using it has one), so the year's computation skips the sort.
_FUND_BEFORE = "SUM(f.before_limit) OVER w - f.before_limit"
_NO_LIMIT = "0::numeric"


def inpatient_stored(names, limited=True):
    """The differing stays; `limited`: whether any of the year's stays has a limit."""
    return _CASE_FIGURES.format(columns=_CASE_STORED, where=_DIFFERS.format(amount="expected"),
                                fund_before=_FUND_BEFORE if limited else _NO_LIMIT, **names)


def inpatient_derived(names, person=True):
    return Statement(inpatient_parts(names, person),
                     _CASE_FIGURES.format(columns=_CASE_DERIVED, where="ORDER BY e.discharge_date, e.serial, e.id",
                                          fund_before=_FUND_BEFORE, **names))
