"""The demo's benefit side (SPEC §6.8): an FJ-conformant table, referrals, relocation filings, a few
out-of-city claims, then 应付统筹 for the year, so the 待遇测算核对 page has something real to show.

The generated claims and cases are not touched: every other scheme's figures stay as they were. The
table is the population's own ratios (settlement/demo/population.py, deductible 0, cross-county −5
points), so most claims follow it; what differs is known:
* resident 一级 inpatient stays were paid at 75%, the table (to keep the 基层 gap of 10 points) says 70%;
* referred visits at 二级/三级 were paid +2 points, which FJ gives to 下转 only (their referrals are 上转);
* added employee 特病门诊 claims (in no scheme's actual spending): relocated persons' claims follow the
  table, but persons who filed twice in the year were still paid as relocated (revoked: −20 points),
  and one in three unreferred out-of-city claims was paid at the full ratio.
All rows are written set-based in SQL, so the city size seeds them as fast as the small one.
"""
from decimal import Decimal

from django.db import connection

from alliances.models import Institution, InstitutionLevel, Region
from settlement.benefits.models import BenefitRule, BenefitTable, Referral, Relocation
from settlement.benefits.params import BenefitParams
from settlement.benefits.services import approve_table, compute_expected
from settlement.engine.models import PaymentPolicy
from settlement.engine.params import defaults_of
from settlement.models import ApprovalStatus, InpatientCase, OutpatientClaim

from .population import INPATIENT_RATIO, OUTPATIENT_RATIO, RESIDENT

OUT_OF_CITY = [("460100", "海口市", None), ("460105", "海口市秀英区", "460100")]
OUT_OF_CITY_HOSPITAL = ("H46010500001", "海口市秀英区人民医院（市外）")
CROSS_COUNTY_POINTS = "5"  # the population pays 5 points less outside the county of insurance
# Keep the resident inpatient 基层 ratio 10 points above every other level (FJ): 一级 at 70, not 75.
INPATIENT_OVERRIDES = {(RESIDENT, "一级"): 700}
TUBERCULOSIS_RATIO = Decimal("75")


def _table_rows(year):
    rows = []
    for (insurance, visit_type), by_level in OUTPATIENT_RATIO.items():
        for level, permille in by_level.items():
            rows.append(BenefitRule(
                year=year, insurance_type=insurance, care_type="门诊", level=level,
                visit_type="" if visit_type == "普通门诊" else visit_type, disease_prefix="", deductible=Decimal("0"),
                ratio=Decimal(permille) / 10,
            ))
    for prefix in BenefitParams().tuberculosis_prefixes:
        rows.append(BenefitRule(year=year, insurance_type=RESIDENT, care_type="门诊", level="基层", visit_type="",
                                disease_prefix=prefix, deductible=Decimal("0"), ratio=TUBERCULOSIS_RATIO))
    for insurance, by_level in INPATIENT_RATIO.items():
        for level, permille in by_level.items():
            permille = INPATIENT_OVERRIDES.get((insurance, level), permille)
            rows.append(BenefitRule(year=year, insurance_type=insurance, care_type="住院", level=level, visit_type="",
                                    disease_prefix="", deductible=Decimal("0"), ratio=Decimal(permille) / 10))
    return rows


def _q(model):
    return connection.ops.quote_name(model._meta.db_table)


def write_benefits(city, approver=None, log=print, plant=None):
    """Returns ({model: rows written}, claims added, what `plant` returned) and logs what was computed.

    `plant(outside)` adds rows at the out-of-city hospital before 应付统筹 is computed, so they are figured.
    """
    year = city.year
    regions = {}
    for code, name, parent in OUT_OF_CITY:
        regions[code] = Region.objects.create(code=code, name=name, parent=regions.get(parent))
    outside = Institution.objects.create(
        code=OUT_OF_CITY_HOSPITAL[0], name=OUT_OF_CITY_HOSPITAL[1], county=regions["460105"],
        level=InstitutionLevel.SECONDARY,
    )
    BenefitRule.objects.bulk_create(_table_rows(year))
    PaymentPolicy.objects.create(
        scheme="benefits", year=year, name="福建预设（演示：跨县降5个百分点）",
        parameters={**defaults_of(BenefitParams), "cross_county_points": CROSS_COUNTY_POINTS},
        status=ApprovalStatus.APPROVED, approved_by=approver,
    )
    BenefitTable.objects.create(year=year)
    approve_table(year, approver)
    params = {"year": year, "first": f"{year}-01-01", "last": f"{year}-12-31", "outside": outside.pk}
    names = {"claim": _q(OutpatientClaim), "case": _q(InpatientCase), "ref": _q(Referral), "reloc": _q(Relocation),
             "inst": _q(Institution), "person": "contracts_insuredperson", "contract": "contracts_contract"}
    with connection.cursor() as cursor:
        for statement in _STATEMENTS:
            cursor.execute(statement.format(**names), params)
        cursor.execute(f"SELECT direction, count(*) FROM {names['ref']} GROUP BY direction ORDER BY direction")
        by_direction = dict(cursor.fetchall())
        cursor.execute(f"SELECT count(*) FROM {names['reloc']}")
        relocations = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM {names['claim']} WHERE serial LIKE 'SW%%'")
        added_claims = cursor.fetchone()[0]
    planted = plant(outside) if plant else None
    counts = compute_expected(year, user=approver)
    log(f"  待遇政策表：{BenefitRule.objects.filter(year=year).count()} 条规则（已审批）；转诊 "
        + "、".join(f"{k}{v}" for k, v in by_direction.items()) + f"；异地安置备案 {relocations} 条")
    log(f"  应付统筹：门诊 {counts['claims']:,} 笔、住院 {counts['cases']:,} 例，与统筹支付不一致 {counts['differing']:,} 笔")
    return {BenefitRule: BenefitRule.objects.filter(year=year).count(), Referral: sum(by_direction.values()),
            Relocation: relocations}, added_claims, planted


# Employees without a contract (one in 25), in five groups by id: 0 relocated (in force), 1 filed twice
# (revoked), 2 referred out of the city (转外), 3 out of the city unreferred, 4 referred down (下转).
_CHOSEN = """
  SELECT p.id, p.county_id, (p.id / 25) %% 5 AS grp FROM {person} p
  WHERE p.insurance_type = '职工' AND p.id %% 25 = 0
    AND NOT EXISTS (SELECT 1 FROM {contract} c WHERE c.person_id = p.id)
"""

_STATEMENTS = [
    # 上转 for the referred visits at 二级/三级, from the family doctor's institution, on the visit day.
    """
    INSERT INTO {ref} (number, person_id, from_institution_id, to_institution_id, referred_on, direction)
    SELECT 'SZ' || c.id, c.person_id, k.institution_id, c.institution_id, c.visit_date, '上转'
    FROM {claim} c JOIN LATERAL (
      SELECT k.institution_id FROM {contract} k WHERE k.person_id = c.person_id AND k.start <= c.visit_date
      ORDER BY k.start DESC LIMIT 1) k ON k.institution_id <> c.institution_id
    WHERE c.referral AND c.visit_date BETWEEN %(first)s AND %(last)s
    """,
    # Joined stays: a stay begun within 7 days of a discharge from a lower-level institution.
    """
    INSERT INTO {ref} (number, person_id, from_institution_id, to_institution_id, referred_on, direction)
    SELECT DISTINCT ON (b.id) 'HB' || b.id, b.person_id, a.institution_id, b.institution_id, a.discharge_date, '上转'
    FROM {case} a JOIN {case} b ON b.person_id = a.person_id AND b.id <> a.id
      AND b.admission_date BETWEEN a.discharge_date AND a.discharge_date + 7
    JOIN {inst} ia ON ia.id = a.institution_id JOIN {inst} ib ON ib.id = b.institution_id
    WHERE array_position(ARRAY['基层', '一级', '二级', '三级']::varchar[], ib.level)
        > array_position(ARRAY['基层', '一级', '二级', '三级']::varchar[], ia.level)
      AND b.discharge_date BETWEEN %(first)s AND %(last)s
    ORDER BY b.id, a.discharge_date DESC
    """,
    "CREATE TEMP TABLE demo_benefit_persons ON COMMIT DROP AS " + _CHOSEN,
    # Relocation filings to 海口 (460100): one for group 0, two for group 1.
    """
    INSERT INTO {reloc} (person_id, filed_on, destination, ended_on)
    SELECT id, make_date(%(year)s, 1, 15), '460100', NULL::date FROM demo_benefit_persons WHERE grp IN (0, 1)
    UNION ALL
    SELECT id, make_date(%(year)s, 8, 1), '460100', NULL::date FROM demo_benefit_persons WHERE grp = 1
    """,
    # 转外 on 1 March for group 2; 下转 on 1 March for group 4, from the county's biggest hospital to
    # its first 基层 institution.
    """
    INSERT INTO {ref} (number, person_id, from_institution_id, to_institution_id, referred_on, direction)
    SELECT 'ZW' || p.id, p.id, h.id, %(outside)s, make_date(%(year)s, 3, 1), '转外'
    FROM demo_benefit_persons p JOIN LATERAL (
      SELECT id FROM {inst} WHERE county_id = p.county_id AND level IN ('三级', '二级') ORDER BY level, id LIMIT 1) h ON true
    WHERE p.grp = 2
    UNION ALL
    SELECT 'XZ' || p.id, p.id, h.id, g.id, make_date(%(year)s, 3, 1), '下转'
    FROM demo_benefit_persons p
    JOIN LATERAL (SELECT id FROM {inst} WHERE county_id = p.county_id AND level IN ('三级', '二级')
                  ORDER BY level, id LIMIT 1) h ON true
    JOIN LATERAL (SELECT id FROM {inst} WHERE county_id = p.county_id AND level = '基层' ORDER BY id LIMIT 1) g ON true
    WHERE p.grp = 4
    """,
    # Three 特病门诊 claims each (employee ratios: 二级 85%, 基层 88%): out of the city for groups 0–3 on
    # 10 Mar, 20 Apr and 25 May; at the 下转 institution for group 4 on 2 and 6 Mar (88 + 2 = 90%).
    # Reported: relocated 85% (right), revoked 85% (wrong: 65%), referred out 85% (right),
    # unreferred 65% (right) but the second claim 85% (wrong), 下转 90% (right).
    """
    INSERT INTO {claim} (institution_id, serial, person_id, visit_date, insurance_type, visit_type, disease_id,
      total_cost, fund_paid, personal_paid, referral)
    SELECT x.institution_id, 'SW' || %(year)s || lpad(x.person_id::text, 9, '0') || x.n, x.person_id, x.day, '职工',
      '特病门诊', NULL, x.cost, round(x.cost * x.paid / 100, 2), x.cost - round(x.cost * x.paid / 100, 2), false
    FROM (
      SELECT p.id AS person_id, n, %(outside)s AS institution_id,
        (ARRAY[make_date(%(year)s, 3, 10), make_date(%(year)s, 4, 20), make_date(%(year)s, 5, 25)])[n] AS day,
        (800 + p.id %% 500)::numeric(16, 2) AS cost,
        CASE WHEN p.grp = 3 AND n <> 2 THEN 65 ELSE 85 END AS paid
      FROM demo_benefit_persons p CROSS JOIN generate_series(1, 3) n WHERE p.grp < 4
      UNION ALL
      SELECT p.id, n, r.to_institution_id, make_date(%(year)s, 3, 1) + (n * 2 - 1), (120 + p.id %% 80)::numeric(16, 2), 90
      FROM demo_benefit_persons p JOIN {ref} r ON r.person_id = p.id AND r.direction = '下转'
      CROSS JOIN generate_series(1, 2) n WHERE p.grp = 4
    ) x
    """,
    "DROP TABLE demo_benefit_persons",
]
