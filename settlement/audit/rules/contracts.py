"""SRV01 签约未履约 (SPEC §9): a verified contract in force long enough in the year, never served."""
from settlement.audit.models import Severity

from .base import TABLES, AuditRule, register


@register
class UnservedContract(AuditRule):
    code = "SRV01"
    name = "签约未履约"
    severity = Severity.NOTICE
    finding_on = "家庭医生签约"

    def select(self, ctx, params):
        # In force [s, e] within the year; "≥ N months" means s + N months ≤ e + 1 day (1 Jul–31 Dec = 6).
        sql = f"""
        SELECT 'contract:' || k.id, i.county_id, k.institution_id, k.person_id, NULL::bigint, NULL::bigint, k.id,
               0.00,
               format('签约%%s起（核实于%%s），年内在约%%s至%%s，不少于%%s个月，期间本机构无家庭医生服务记录',
                      k.start, k.verified_on, k.s, k.e, %(months)s),
               jsonb_build_object('in_force_from', k.s, 'in_force_to', k.e)
        FROM (
            SELECT k.id, k.institution_id, k.person_id, k.start, k.verified_on,
                   greatest(k.start, %(first_day)s::date) AS s,
                   least(coalesce(k."end", %(last_day)s::date), %(last_day)s::date) AS e
            FROM {TABLES["contract"]} k
            WHERE k.verified_on IS NOT NULL AND k.verified_on <= %(last_day)s::date
              AND k.start <= %(last_day)s::date AND (k."end" IS NULL OR k."end" >= %(first_day)s::date)
        ) k
        JOIN {TABLES["institution"]} i ON i.id = k.institution_id
        WHERE k.s + make_interval(months => %(months)s) <= k.e + 1
          AND NOT EXISTS (
              SELECT 1 FROM {TABLES["fd_service"]} f
              WHERE f.person_id = k.person_id AND f.institution_id = k.institution_id
                AND f.service_date BETWEEN k.s AND k.e
          )
        """
        return sql, ctx.named(months=params.unserved_months)
