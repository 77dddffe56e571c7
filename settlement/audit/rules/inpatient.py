"""Inpatient-case rules: SPL01 分解住院, LOW01 低标准入院, HIC01 高倍率病例 (SPEC §9).

A case belongs to its discharge year (SPEC §3); length of stay is discharge − admission, at least 1.
The group's 病组均次费用 is the DRG catalogue row of the audit year.
"""
from settlement.audit.models import Severity
from settlement.models import DischargeMode

from .base import TABLES, AuditRule, register

_IN_YEAR = "c.discharge_date BETWEEN %(first_day)s::date AND %(last_day)s::date"
_STAY = "greatest(1, c.discharge_date - c.admission_date)"


def _transferred(alias):
    """Transferred as uploaded or set by staff, or by 离院方式 2 (InpatientCase.was_transferred)."""
    return f"({alias}.transferred OR {alias}.discharge_mode IS NOT DISTINCT FROM '{DischargeMode.TRANSFERRED.value}')"


def _died(alias):
    return f"{alias}.discharge_mode IS NOT DISTINCT FROM '{DischargeMode.DIED.value}'"


def exempt_patterns(params):
    return [code.strip().upper() + "%" for code in params.split_exempt_diagnoses if code.strip()]


@register
class SplitAdmission(AuditRule):
    code = "SPL01"
    name = "分解住院"
    severity = Severity.SUSPECT
    finding_on = "住院病例"

    def select(self, ctx, params):
        # The later stay c is the finding; of several earlier stays it names the nearest one.
        sql = f"""
        SELECT DISTINCT ON (c.id)
               'case:' || c.id, i.county_id, c.institution_id, c.person_id, NULL::bigint, c.id, NULL::bigint,
               c.fund_paid,
               format('出院后%%s天再次入院（标准：不超过%%s天）：前次病案号%%s，%%s出院，主诊断%%s，DRG %%s；'
                      '本次%%s入院，主诊断%%s，DRG %%s；两次住院均完整、未转院',
                      c.admission_date - a.discharge_date, %(days)s, a.serial, a.discharge_date,
                      a.principal_diagnosis, coalesce(nullif(a.drg_code, ''), '—'), c.admission_date,
                      c.principal_diagnosis, coalesce(nullif(c.drg_code, ''), '—')),
               jsonb_build_object('earlier_case_id', a.id, 'earlier_serial', a.serial,
                                  'gap_days', c.admission_date - a.discharge_date)
        FROM {TABLES["case"]} c
        JOIN {TABLES["case"]} a
          ON a.person_id = c.person_id AND a.institution_id = c.institution_id
         AND a.discharge_date <= c.admission_date
         AND c.admission_date - a.discharge_date <= %(days)s
         AND (a.admission_date, a.id) < (c.admission_date, c.id)
         AND (left(a.principal_diagnosis, 3) = left(c.principal_diagnosis, 3)
              OR (a.drg_code <> '' AND a.drg_code = c.drg_code))
         AND NOT a.incomplete_stay AND NOT {_transferred('a')}
         AND NOT upper(a.principal_diagnosis) LIKE ANY (%(exempt)s)
        JOIN {TABLES["institution"]} i ON i.id = c.institution_id
        WHERE {_IN_YEAR}
          AND NOT c.incomplete_stay AND NOT {_transferred('c')}
          AND NOT upper(c.principal_diagnosis) LIKE ANY (%(exempt)s)
        ORDER BY c.id, a.discharge_date DESC, a.id DESC
        """
        return sql, ctx.named(days=params.split_days, exempt=exempt_patterns(params) or ["\x00"])


@register
class LowStandardAdmission(AuditRule):
    code = "LOW01"
    name = "低标准入院"
    severity = Severity.SUSPECT
    finding_on = "住院病例"

    def select(self, ctx, params):
        sql = f"""
        SELECT 'case:' || c.id, i.county_id, c.institution_id, c.person_id, NULL::bigint, c.id, NULL::bigint,
               c.fund_paid,
               format('住院%%s天（标准：不超过%%s天），总费用%%s元，低于病组%%s均次费用%%s元的%%s（%%s元）；住院完整、未转院、非死亡',
                      {_STAY}, %(days)s, c.total_cost, c.drg_code, g.average_cost, %(ratio)s,
                      round(g.average_cost * %(ratio)s, 2)),
               jsonb_build_object('drg_code', c.drg_code, 'average_cost', g.average_cost::text,
                                  'length_of_stay', {_STAY})
        FROM {TABLES["case"]} c
        JOIN {TABLES["drg_group"]} g ON g.year = %(year)s AND g.code = c.drg_code
        JOIN {TABLES["institution"]} i ON i.id = c.institution_id
        WHERE {_IN_YEAR}
          AND {_STAY} <= %(days)s
          AND c.total_cost < g.average_cost * %(ratio)s
          AND NOT c.incomplete_stay AND NOT {_transferred('c')} AND NOT {_died('c')}
        """
        return sql, ctx.named(days=params.low_stay_days, ratio=params.low_cost_ratio)


@register
class HighMultipleCase(AuditRule):
    code = "HIC01"
    name = "高倍率病例"
    severity = Severity.NOTICE
    finding_on = "住院病例"

    def select(self, ctx, params):
        multiple = "CASE WHEN i.level = '三级' THEN %(tertiary)s ELSE %(other)s END"
        sql = f"""
        SELECT 'case:' || c.id, i.county_id, c.institution_id, c.person_id, NULL::bigint, c.id, NULL::bigint,
               c.total_cost - g.average_cost,
               format('总费用%%s元，超过病组%%s均次费用%%s元的%%s倍（%%s医院）；可申请特病单议',
                      c.total_cost, c.drg_code, g.average_cost, {multiple}, i.level),
               jsonb_build_object('drg_code', c.drg_code, 'average_cost', g.average_cost::text,
                                  'multiple', ({multiple})::text)
        FROM {TABLES["case"]} c
        JOIN {TABLES["drg_group"]} g ON g.year = %(year)s AND g.code = c.drg_code
        JOIN {TABLES["institution"]} i ON i.id = c.institution_id
        WHERE {_IN_YEAR}
          AND c.total_cost > g.average_cost * {multiple}
        """
        return sql, ctx.named(tertiary=params.high_multiple_tertiary, other=params.high_multiple_other)
