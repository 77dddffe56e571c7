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
        # One hash aggregate finds the repeated keys; only their claims are numbered in serial order.
        sql = f"""
        WITH repeated AS (
            SELECT c.person_id, c.institution_id, c.visit_date, c.visit_type, c.total_cost
            FROM {TABLES["claim"]} c
            WHERE {_IN_YEAR}
            GROUP BY c.person_id, c.institution_id, c.visit_date, c.visit_type, c.total_cost
            HAVING count(*) > 1
        )
        SELECT 'claim:' || d.id, i.county_id, d.institution_id, d.person_id, d.id, NULL::bigint, NULL::bigint,
               d.fund_paid,
               format('与先前的结算流水号%%s参保人、机构、就诊日期（%%s）、门诊类型（%%s）和总费用（%%s元）均相同',
                      d.first_serial, d.visit_date, d.visit_type, d.total_cost),
               jsonb_build_object('earlier_claim_id', d.first_id, 'earlier_serial', d.first_serial)
        FROM (
            SELECT c.id, c.person_id, c.institution_id, c.visit_date, c.visit_type, c.total_cost, c.fund_paid,
                   first_value(c.id) OVER w AS first_id, first_value(c.serial) OVER w AS first_serial,
                   row_number() OVER w AS rn
            FROM repeated r
            JOIN {TABLES["claim"]} c
              ON c.person_id = r.person_id AND c.visit_date = r.visit_date AND c.institution_id = r.institution_id
             AND c.visit_type = r.visit_type AND c.total_cost = r.total_cost
            WINDOW w AS (PARTITION BY c.person_id, c.institution_id, c.visit_date, c.visit_type, c.total_cost
                         ORDER BY c.serial, c.id)
        ) d
        JOIN {TABLES["institution"]} i ON i.id = d.institution_id
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
        # A hash aggregate finds the busy (person, institution, month); only their visits are numbered in
        # date order, and those past the limit are the amount.
        sql = f"""
        WITH heavy AS (
            SELECT c.person_id, c.institution_id, date_trunc('month', c.visit_date)::date AS first_day
            FROM {TABLES["claim"]} c
            WHERE {_IN_YEAR}
            GROUP BY 1, 2, 3
            HAVING count(*) > %(limit)s
        )
        SELECT format('p%%s:i%%s:%%s', v.person_id, v.institution_id, v.month), i.county_id, v.institution_id,
               v.person_id, NULL::bigint, NULL::bigint, NULL::bigint,
               sum(v.fund_paid) FILTER (WHERE v.rn > %(limit)s),
               format('%%s年%%s月在本机构门诊就诊%%s次，超过每月%%s次；超出的%%s次统筹支付合计%%s元',
                      %(year)s, v.month, count(*), %(limit)s, count(*) - %(limit)s,
                      sum(v.fund_paid) FILTER (WHERE v.rn > %(limit)s)),
               jsonb_build_object('claim_ids', array_agg(v.id ORDER BY v.rn),
                                  'beyond_claim_ids', array_agg(v.id ORDER BY v.rn) FILTER (WHERE v.rn > %(limit)s))
        FROM (
            SELECT c.id, c.person_id, c.institution_id, c.fund_paid, extract(month FROM h.first_day)::int AS month,
                   row_number() OVER (PARTITION BY c.person_id, c.institution_id, h.first_day
                                      ORDER BY c.visit_date, c.serial, c.id) AS rn
            FROM heavy h
            JOIN {TABLES["claim"]} c
              ON c.person_id = h.person_id AND c.institution_id = h.institution_id
             AND c.visit_date >= h.first_day AND c.visit_date < (h.first_day + interval '1 month')::date
        ) v
        JOIN {TABLES["institution"]} i ON i.id = v.institution_id
        GROUP BY v.person_id, v.institution_id, v.month, i.county_id
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
        # visits than institutions required are dropped by a cheap count before any join.
        sql = f"""
        WITH busy AS (
            SELECT c.person_id, c.visit_date
            FROM {TABLES["claim"]} c
            WHERE {_IN_YEAR}
            GROUP BY c.person_id, c.visit_date
            HAVING count(*) >= %(institutions)s
        )
        SELECT format('p%%s:%%s', c.person_id, c.visit_date), p.county_id, NULL::bigint, c.person_id,
               NULL::bigint, NULL::bigint, NULL::bigint,
               sum(c.fund_paid),
               format('%%s在%%s个机构门诊就诊（%%s），达到同日%%s个机构；当日%%s次就诊统筹支付合计%%s元',
                      c.visit_date, count(DISTINCT c.institution_id), string_agg(DISTINCT i.code, '、'),
                      %(institutions)s, count(*), sum(c.fund_paid)),
               jsonb_build_object('claim_ids', array_agg(c.id ORDER BY c.id),
                                  'institution_ids', array_agg(DISTINCT c.institution_id))
        FROM busy b
        JOIN {TABLES["claim"]} c ON c.person_id = b.person_id AND c.visit_date = b.visit_date
        JOIN {TABLES["institution"]} i ON i.id = c.institution_id
        JOIN {TABLES["person"]} p ON p.id = c.person_id
        GROUP BY c.person_id, c.visit_date, p.county_id
        HAVING count(DISTINCT c.institution_id) >= %(institutions)s
        """
        return sql, ctx.named(institutions=params.same_day_institutions)
