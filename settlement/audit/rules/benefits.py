"""Rules over the benefit engine (SPEC §6.8): BEN01 待遇计算不符, REL01 异地安置待遇取消 (SPEC §9).

Both read the stored 应付统筹 figures through settlement.benefits.selectors.differing(), whatever table
or view holds them: an audit run never recomputes them, so the findings say what the last 测算 said. A year never computed has no figures, hence no BEN01
findings and a REL01 amount of 0.
"""
from django.db import connection

from settlement.approval import Refused
from settlement.audit.models import Severity
from settlement.benefits.models import Relocation
from settlement.benefits.params import REVOKING_FILINGS, BenefitParams
from settlement.benefits.selectors import TOLERANCE, differing
from settlement.benefits.services import benefit_params, city_prefix

from .base import TABLES, AuditRule, Share, register

_RELOCATION = Relocation._meta.db_table


@register
class BenefitMismatch(AuditRule):
    code = "BEN01"
    name = "待遇计算不符"
    severity = Severity.SUSPECT
    finding_on = "门诊结算记录 / 住院病例"

    def select(self, ctx, params):
        # A thin SQL over selectors.differing(), the figures' own reading of "differs" (their partial
        # index serves it): the benefit engine may store its figures as it likes behind that function.
        figures = differing(ctx.year).values(
            "id", "claim_id", "case_id", "institution_id", "person_id", "care_type", "serial",
            "fund_paid", "expected", "difference",
        )
        sql = f"""
        SELECT CASE WHEN f.claim_id IS NOT NULL THEN 'claim:' || f.claim_id ELSE 'case:' || f.case_id END,
               i.county_id, f.institution_id, f.person_id, f.claim_id, f.case_id, NULL::bigint,
               f.difference,
               format('%%s%%s：上报统筹支付%%s元，应付统筹%%s元，差额%%s元（容差%%s元）；应付统筹按%%s年度待遇政策测算',
                      f.care_type, f.serial, f.fund_paid, f.expected, f.difference, %(tolerance)s, %(year)s),
               jsonb_build_object('benefit_figure_id', f.id, 'fund_paid', f.fund_paid::text,
                                  'expected', f.expected::text, 'difference', f.difference::text)
        FROM ({embedded(figures)}) f
        JOIN {TABLES["institution"]} i ON i.id = f.institution_id
        """
        return sql, ctx.named(tolerance=TOLERANCE)


def embedded(queryset):
    """A queryset as SQL text to nest in a rule's statement, its parameters quoted by the driver and its
    percent signs doubled for the statement's own %(name)s placeholders."""
    sql, values = queryset.query.sql_with_params()
    return connection.ops.compose_sql(sql, values).replace("%", "%%")


def out_of_city_prefix(year):
    """The 区划代码 prefix of the city the year's figures were computed for.

    Without an approved `benefits` policy there are no figures to sum, so the defaults only decide
    which (absent) rows would count.
    """
    try:
        return city_prefix(benefit_params(year))
    except Refused:
        return city_prefix(BenefitParams())


@register
class RevokedRelocation(AuditRule):
    code = "REL01"
    name = "异地安置待遇取消"
    severity = Severity.VIOLATION
    finding_on = "参保人"
    splits = True

    def shares(self, year, findings):
        """Each listed out-of-city claim's and case's 统筹支付 − 应付统筹, as the rule summed it: from
        differing(), an item not there (paid as it should have been) has no share."""
        out = []
        for kind in ("claim", "case"):
            listed = {pk: [int(i) for i in data.get(f"{kind}_ids") or ()] for pk, data in findings.items()}
            wanted = {i for ids in listed.values() for i in ids}
            if not wanted:
                continue
            difference = dict(
                differing(year).filter(**{f"{kind}_id__in": wanted}).values_list(f"{kind}_id", "difference")
            )
            out += [Share(pk, i if kind == "claim" else None, i if kind == "case" else None, difference[i])
                    for pk, ids in listed.items() for i in ids if i in difference]
        return out

    def select(self, ctx, params):
        # A person-level finding: it sits in the person's county of insurance (like FRQ02).
        sql = f"""
        WITH revoked AS (
            SELECT r.person_id, count(*) AS filings,
                   string_agg(r.filed_on::text || '→' || r.destination, '、' ORDER BY r.filed_on) AS dates,
                   array_agg(r.id ORDER BY r.filed_on) AS ids
            FROM {_RELOCATION} r
            WHERE r.filed_on BETWEEN %(first_day)s::date AND %(last_day)s::date
            GROUP BY r.person_id
            HAVING count(*) >= %(filings)s
        ),
        -- The person's out-of-city claims and cases are reached by their (person, date) indexes; what
        -- each differs by comes from selectors.differing(), hashed once: an item not there was paid as
        -- it should have been (within the 0.01 元 tolerance) and adds nothing.
        figures AS MATERIALIZED ({embedded(differing(ctx.year).values("claim_id", "case_id", "difference"))}),
        items AS (
            SELECT r.person_id, c.id AS claim_id, NULL::bigint AS case_id, c.institution_id,
                   coalesce(f.difference, 0.00) AS difference
            FROM revoked r
            JOIN {TABLES["claim"]} c ON c.person_id = r.person_id
             AND c.visit_date BETWEEN %(first_day)s::date AND %(last_day)s::date
            LEFT JOIN figures f ON f.claim_id = c.id
            UNION ALL
            SELECT r.person_id, NULL::bigint, c.id, c.institution_id, coalesce(f.difference, 0.00)
            FROM revoked r
            JOIN {TABLES["case"]} c ON c.person_id = r.person_id
             AND c.discharge_date BETWEEN %(first_day)s::date AND %(last_day)s::date
            LEFT JOIN figures f ON f.case_id = c.id
        ),
        away AS (
            SELECT f.person_id, count(*) AS n, sum(f.difference) AS amount,
                   coalesce(array_agg(f.claim_id ORDER BY f.claim_id) FILTER (WHERE f.claim_id IS NOT NULL), '{{}}') AS claim_ids,
                   coalesce(array_agg(f.case_id ORDER BY f.case_id) FILTER (WHERE f.case_id IS NOT NULL), '{{}}') AS case_ids
            FROM items f
            JOIN {TABLES["institution"]} i ON i.id = f.institution_id
            JOIN {TABLES["region"]} ir ON ir.id = i.county_id
            WHERE NOT starts_with(ir.code, %(city)s)
            GROUP BY f.person_id
        )
        SELECT 'person:' || r.person_id, p.county_id, NULL::bigint, r.person_id, NULL::bigint, NULL::bigint,
               NULL::bigint,
               coalesce(a.amount, 0.00),
               format('%%s年异地安置备案%%s次（%%s），一年内备案%%s次及以上，取消当年度异地安置待遇；'
                      '当年市外就医%%s笔，统筹支付与应付统筹差额合计%%s元',
                      %(year)s, r.filings, r.dates, %(filings)s, coalesce(a.n, 0), coalesce(a.amount, 0.00)),
               jsonb_build_object('relocation_ids', r.ids, 'claim_ids', coalesce(a.claim_ids, '{{}}'),
                                  'case_ids', coalesce(a.case_ids, '{{}}'))
        FROM revoked r
        JOIN {TABLES["person"]} p ON p.id = r.person_id
        LEFT JOIN away a ON a.person_id = r.person_id
        """
        return sql, ctx.named(filings=REVOKING_FILINGS, city=out_of_city_prefix(ctx.year))
