"""Outpatient-claim rules: DUP01 重复结算, FRQ01 超频就诊, FRQ02 同日多机构就诊 (SPEC §9)."""
from settlement.audit.models import Severity

from .base import TABLES, AuditRule, register

_IN_YEAR = "c.visit_date BETWEEN %(first_day)s::date AND %(last_day)s::date"


@register
class DuplicateClaim(AuditRule):
    code = "DUP01"
    name = "重复结算"
    severity = Severity.VIOLATION
    finding_on = "门诊结算记录"

    def select(self, ctx, params):
        # One aggregate finds the repeated keys; only their claims are read again, through the
        # (person, date) index, and numbered in serial order.
        sql = f"""
        WITH repeated AS (
            SELECT c.person_id, c.institution_id, c.visit_date, c.visit_type, c.total_cost
            FROM {TABLES["claim"]} c
            WHERE {_IN_YEAR}
            GROUP BY c.person_id, c.institution_id, c.visit_date, c.visit_type, c.total_cost
            HAVING count(*) > 1
        )
        SELECT 'claim:' || d.id, i.county_id, r.institution_id, r.person_id, d.id, NULL::bigint, NULL::bigint,
               d.fund_paid,
               format('与先前的结算流水号%%s参保人、机构、就诊日期（%%s）、门诊类型（%%s）和总费用（%%s元）均相同',
                      d.first_serial, r.visit_date, r.visit_type, r.total_cost),
               jsonb_build_object('earlier_claim_id', d.first_id, 'earlier_serial', d.first_serial)
        FROM repeated r
        CROSS JOIN LATERAL (
            SELECT c.id, c.fund_paid,
                   first_value(c.id) OVER w AS first_id, first_value(c.serial) OVER w AS first_serial,
                   row_number() OVER w AS rn
            FROM {TABLES["claim"]} c
            WHERE c.person_id = r.person_id AND c.visit_date = r.visit_date AND c.institution_id = r.institution_id
              AND c.visit_type = r.visit_type AND c.total_cost = r.total_cost
            WINDOW w AS (ORDER BY c.serial, c.id)
        ) d
        JOIN {TABLES["institution"]} i ON i.id = r.institution_id
        WHERE d.rn > 1
        """
        return sql, ctx.named()


@register
class FrequentVisits(AuditRule):
    code = "FRQ01"
    name = "超频就诊"
    severity = Severity.SUSPECT
    finding_on = "参保人×机构×月"

    def select(self, ctx, params):
        # An aggregate finds the busy (person, institution, month); only their visits are read again,
        # through the (person, date) index, and numbered in date order: those past the limit are the amount.
        sql = f"""
        WITH heavy AS (
            SELECT c.person_id, c.institution_id, date_trunc('month', c.visit_date)::date AS first_day
            FROM {TABLES["claim"]} c
            WHERE {_IN_YEAR}
            GROUP BY 1, 2, 3
            HAVING count(*) > %(limit)s
        )
        SELECT format('p%%s:i%%s:%%s', h.person_id, h.institution_id, extract(month FROM h.first_day)::int),
               i.county_id, h.institution_id, h.person_id, NULL::bigint, NULL::bigint, NULL::bigint,
               v.beyond,
               format('%%s年%%s月在本机构门诊就诊%%s次，超过每月%%s次；超出的%%s次统筹支付合计%%s元',
                      %(year)s, extract(month FROM h.first_day)::int, v.n, %(limit)s, v.n - %(limit)s, v.beyond),
               jsonb_build_object('claim_ids', v.ids, 'beyond_claim_ids', v.beyond_ids)
        FROM heavy h
        CROSS JOIN LATERAL (
            SELECT count(*) AS n, sum(x.fund_paid) FILTER (WHERE x.rn > %(limit)s) AS beyond,
                   array_agg(x.id ORDER BY x.rn) AS ids,
                   array_agg(x.id ORDER BY x.rn) FILTER (WHERE x.rn > %(limit)s) AS beyond_ids
            FROM (
                SELECT c.id, c.fund_paid, row_number() OVER (ORDER BY c.visit_date, c.serial, c.id) AS rn
                FROM {TABLES["claim"]} c
                WHERE c.person_id = h.person_id AND c.institution_id = h.institution_id
                  AND c.visit_date >= h.first_day AND c.visit_date < (h.first_day + interval '1 month')::date
            ) x
        ) v
        JOIN {TABLES["institution"]} i ON i.id = h.institution_id
        """
        return sql, ctx.named(limit=params.monthly_visit_limit)


@register
class SameDayInstitutions(AuditRule):
    code = "FRQ02"
    name = "同日多机构就诊"
    severity = Severity.SUSPECT
    finding_on = "参保人×日"

    def select(self, ctx, params):
        # No single institution: the finding sits in the person's county of insurance. Days with fewer
        # visits than institutions required are dropped by a cheap count; only the rest are read again,
        # through the (person, date) index.
        sql = f"""
        WITH busy AS (
            SELECT c.person_id, c.visit_date
            FROM {TABLES["claim"]} c
            WHERE {_IN_YEAR}
            GROUP BY c.person_id, c.visit_date
            HAVING count(*) >= %(institutions)s
        )
        SELECT format('p%%s:%%s', b.person_id, b.visit_date), p.county_id, NULL::bigint, b.person_id,
               NULL::bigint, NULL::bigint, NULL::bigint,
               v.total,
               format('%%s在%%s个机构门诊就诊（%%s），达到同日%%s个机构；当日%%s次就诊统筹支付合计%%s元',
                      b.visit_date, v.institutions, v.codes, %(institutions)s, v.n, v.total),
               jsonb_build_object('claim_ids', v.ids, 'institution_ids', v.institution_ids)
        FROM busy b
        CROSS JOIN LATERAL (
            SELECT count(DISTINCT c.institution_id) AS institutions, string_agg(DISTINCT i.code, '、') AS codes,
                   count(*) AS n, sum(c.fund_paid) AS total, array_agg(c.id ORDER BY c.id) AS ids,
                   array_agg(DISTINCT c.institution_id) AS institution_ids
            FROM {TABLES["claim"]} c
            JOIN {TABLES["institution"]} i ON i.id = c.institution_id
            WHERE c.person_id = b.person_id AND c.visit_date = b.visit_date
        ) v
        JOIN {TABLES["person"]} p ON p.id = b.person_id
        WHERE v.institutions >= %(institutions)s
        """
        return sql, ctx.named(institutions=params.same_day_institutions)
