"""Outpatient-claim rules: DUP01 重复结算, FRQ01 超频就诊, FRQ02 同日多机构就诊 (SPEC §9)."""
from settlement.audit.models import Severity

from .base import TABLES, AuditRule, SharedPass, fund_paid_shares, register

_IN_YEAR = "c.visit_date BETWEEN %(first_day)s::date AND %(last_day)s::date"


class PersonDays(SharedPass):
    """The person-days DUP01, FRQ01 and FRQ02 start from, in one streaming pass over the (person, date)
    index alone (no heap, no sort, no hash of ten million keys) instead of one such pass per rule.

    Per person-day of the year: its claims (n), and whether a visit that day has the person's visit
    `limit` places earlier (at any institution) at most 30 days back (heavy): more than `limit` visits
    in one month at one institution make the last of them such a visit. Kept: the days with two claims
    or more (a repeat, or visits at several institutions, needs that many) and the heavy days. A
    superset for every rule; each counts exactly again, by index, on the days it keeps."""

    name = "person_days"

    def select(self, ctx, params):
        # The window's output is in the index's (person, date) order, so the count per day streams on.
        sql = f"""
        SELECT x.person_id, x.visit_date, count(*) AS n, bool_or(x.visit_date - x.back <= 30) AS heavy
        FROM (
            SELECT c.person_id, c.visit_date,
                   lag(c.visit_date, %(limit)s) OVER (PARTITION BY c.person_id ORDER BY c.visit_date) AS back
            FROM {TABLES["claim"]} c
            WHERE {_IN_YEAR}
        ) x
        GROUP BY x.person_id, x.visit_date
        HAVING count(*) >= least(2, %(institutions)s) OR bool_or(x.visit_date - x.back <= 30)
        """
        return sql, ctx.named(institutions=params.same_day_institutions, limit=params.monthly_visit_limit)


PERSON_DAYS = PersonDays()


@register
class DuplicateClaim(AuditRule):
    code = "DUP01"
    name = "重复结算"
    severity = Severity.VIOLATION
    finding_on = "门诊结算记录"
    passes = (PERSON_DAYS,)

    def select(self, ctx, params):
        # Repeats share a (person, day): only the person-days with two claims or more are read again,
        # through the (person, date) index, and their claims numbered in serial order per repeated key.
        sql = f"""
        SELECT 'claim:' || d.id, i.county_id, d.institution_id, b.person_id, d.id, NULL::bigint, NULL::bigint,
               d.fund_paid,
               format('与先前的结算流水号%%s参保人、机构、就诊日期（%%s）、门诊类型（%%s）和总费用（%%s元）均相同',
                      d.first_serial, b.visit_date, d.visit_type, d.total_cost),
               jsonb_build_object('earlier_claim_id', d.first_id, 'earlier_serial', d.first_serial)
        FROM {ctx.table(PERSON_DAYS)} b
        CROSS JOIN LATERAL (
            SELECT c.id, c.fund_paid, c.institution_id, c.visit_type, c.total_cost,
                   first_value(c.id) OVER w AS first_id, first_value(c.serial) OVER w AS first_serial,
                   row_number() OVER w AS rn
            FROM {TABLES["claim"]} c
            WHERE c.person_id = b.person_id AND c.visit_date = b.visit_date
            WINDOW w AS (PARTITION BY c.institution_id, c.visit_type, c.total_cost ORDER BY c.serial, c.id)
        ) d
        JOIN {TABLES["institution"]} i ON i.id = d.institution_id
        WHERE b.n >= 2 AND d.rn > 1
        """
        return sql, ctx.named()


@register
class FrequentVisits(AuditRule):
    code = "FRQ01"
    name = "超频就诊"
    severity = Severity.SUSPECT
    finding_on = "参保人×机构×月"
    passes = (PERSON_DAYS,)
    splits = True

    def shares(self, year, findings):
        return fund_paid_shares(findings, "beyond_claim_ids")  # only the visits beyond the limit are the amount

    def select(self, ctx, params):
        # Only the months of the heavy person-days (see PersonDays) are read again, through the
        # (person, date) index, and counted per institution; the visits numbered past the limit in
        # date order are the amount.
        sql = f"""
        WITH heavy AS (
            SELECT DISTINCT d.person_id, date_trunc('month', d.visit_date)::date AS first_day
            FROM {ctx.table(PERSON_DAYS)} d
            WHERE d.heavy
        )
        SELECT format('p%%s:i%%s:%%s', h.person_id, v.institution_id, extract(month FROM h.first_day)::int),
               i.county_id, v.institution_id, h.person_id, NULL::bigint, NULL::bigint, NULL::bigint,
               v.beyond,
               format('%%s年%%s月在本机构门诊就诊%%s次，超过每月%%s次；超出的%%s次统筹支付合计%%s元',
                      %(year)s, extract(month FROM h.first_day)::int, v.n, %(limit)s, v.n - %(limit)s, v.beyond),
               jsonb_build_object('claim_ids', v.ids, 'beyond_claim_ids', v.beyond_ids)
        FROM heavy h
        CROSS JOIN LATERAL (
            SELECT x.institution_id, count(*) AS n, sum(x.fund_paid) FILTER (WHERE x.rn > %(limit)s) AS beyond,
                   array_agg(x.id ORDER BY x.rn) AS ids,
                   array_agg(x.id ORDER BY x.rn) FILTER (WHERE x.rn > %(limit)s) AS beyond_ids
            FROM (
                SELECT c.id, c.institution_id, c.fund_paid,
                       row_number() OVER (PARTITION BY c.institution_id ORDER BY c.visit_date, c.serial, c.id) AS rn
                FROM {TABLES["claim"]} c
                WHERE c.person_id = h.person_id
                  AND c.visit_date >= h.first_day AND c.visit_date < (h.first_day + interval '1 month')::date
            ) x
            GROUP BY x.institution_id
            HAVING count(*) > %(limit)s
        ) v
        JOIN {TABLES["institution"]} i ON i.id = v.institution_id
        """
        return sql, ctx.named(limit=params.monthly_visit_limit)


@register
class SameDayInstitutions(AuditRule):
    code = "FRQ02"
    name = "同日多机构就诊"
    severity = Severity.SUSPECT
    finding_on = "参保人×日"
    passes = (PERSON_DAYS,)
    splits = True

    def shares(self, year, findings):
        return fund_paid_shares(findings, "claim_ids")

    def select(self, ctx, params):
        # No single institution: the finding sits in the person's county of insurance. Days with fewer
        # visits than institutions required are dropped by their count; only the rest are read again,
        # through the (person, date) index.
        sql = f"""
        SELECT format('p%%s:%%s', b.person_id, b.visit_date), p.county_id, NULL::bigint, b.person_id,
               NULL::bigint, NULL::bigint, NULL::bigint,
               v.total,
               format('%%s在%%s个机构门诊就诊（%%s），达到同日%%s个机构；当日%%s次就诊统筹支付合计%%s元',
                      b.visit_date, v.institutions, v.codes, %(institutions)s, v.n, v.total),
               jsonb_build_object('claim_ids', v.ids, 'institution_ids', v.institution_ids)
        FROM {ctx.table(PERSON_DAYS)} b
        CROSS JOIN LATERAL (
            SELECT count(DISTINCT c.institution_id) AS institutions, string_agg(DISTINCT i.code, '、') AS codes,
                   count(*) AS n, sum(c.fund_paid) AS total, array_agg(c.id ORDER BY c.id) AS ids,
                   array_agg(DISTINCT c.institution_id) AS institution_ids
            FROM {TABLES["claim"]} c
            JOIN {TABLES["institution"]} i ON i.id = c.institution_id
            WHERE c.person_id = b.person_id AND c.visit_date = b.visit_date
        ) v
        JOIN {TABLES["person"]} p ON p.id = b.person_id
        WHERE b.n >= %(institutions)s AND v.institutions >= %(institutions)s
        """
        return sql, ctx.named(institutions=params.same_day_institutions)
