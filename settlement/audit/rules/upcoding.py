"""UPC01 高套分组 (SPEC §9): an institution's share of the most severe group of an ADRG against the city's.

ADRG = the DRG code's first 3 characters; the most severe group ends in 1. The city's share counts
every institution of the city, whatever region the audit is run for.
"""
from settlement.audit.models import Severity

from .base import TABLES, AuditRule, register


@register
class Upcoding(AuditRule):
    code = "UPC01"
    name = "高套分组"
    severity = Severity.SUSPECT
    finding_on = "机构×ADRG"

    def select(self, ctx, params):
        sql = f"""
        WITH cases AS (
            SELECT c.institution_id, left(c.drg_code, 3) AS adrg, right(c.drg_code, 1) = '1' AS severe
            FROM {TABLES["case"]} c
            WHERE c.discharge_date BETWEEN %(first_day)s::date AND %(last_day)s::date AND length(c.drg_code) >= 4
        ), city AS (
            SELECT adrg, count(*) FILTER (WHERE severe)::numeric / count(*) AS share FROM cases GROUP BY adrg
        ), own AS (
            SELECT institution_id, adrg, count(*) AS n, count(*) FILTER (WHERE severe) AS k
            FROM cases GROUP BY institution_id, adrg
        )
        SELECT format('i%%s:%%s', o.institution_id, o.adrg), i.county_id, o.institution_id, NULL::bigint,
               NULL::bigint, NULL::bigint, NULL::bigint, 0.00,
               format('ADRG %%s：本机构%%s例中最重组（末位1）%%s例，占%%s%%%%；全市占%%s%%%%，高出%%s个百分点'
                      '（标准：高出不少于%%s个百分点且不少于%%s例）',
                      o.adrg, o.n, o.k, round(100 * o.k::numeric / o.n, 2), round(100 * city.share, 2),
                      round(100 * o.k::numeric / o.n - 100 * city.share, 2), %(points)s, %(min_cases)s),
               jsonb_build_object('adrg', o.adrg, 'cases', o.n, 'severe_cases', o.k,
                                  'city_share', round(city.share, 6)::text)
        FROM own o
        JOIN city ON city.adrg = o.adrg
        JOIN {TABLES["institution"]} i ON i.id = o.institution_id
        WHERE o.n >= %(min_cases)s AND 100 * o.k::numeric / o.n - 100 * city.share >= %(points)s
        """
        return sql, ctx.named(points=params.upcoding_points, min_cases=params.upcoding_min_cases)
