"""Standards and parameters of the demo year, so that every scheme can be settled.

Budgets and prepayments are calibrated on the generated spending (integer 分 totals accumulated
while the rows streamed past), so settlements show realistic surpluses and overspends.
"""
import datetime
import random
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from settlement.engine.schemes.capitation import history_per_class
from settlement.models import (
    ApprovalStatus, Assessment, BedDayQuota, Budget, CapitationStandard, DiseaseStandard, DrgCoefficient, DrgGroup,
    Payment, Scheme, SpecialStandard, VisitType,
)

from . import catalogue as cat

CENT = Decimal("0.01")


def yuan(fen_amount):
    return (Decimal(int(fen_amount)) / 100).quantize(CENT)


def _round_to(fen_amount, step_yuan):
    step = step_yuan * 100
    return (int(fen_amount) + step // 2) // step * step


def capitation_standards(year, disease_ids, approver, approved_at):
    """The year's capitation standards as a bureau sets them: the 测算 (SPEC §6.1) of the spending it
    has seen, per class and per class × disease, rounded to whole 元 and approved.

    The demo generates one year and its people behave the same every year, so the 测算 runs on that
    year's claims in place of the previous years' (`history_per_class`, the query behind
    `propose_capitation_standards`). Alliances then come out on both sides of their quota, each by
    how its heads' spending differs from the city's average. The diseases in CAPITATION_MISSING are
    left without a standard on purpose: the run lists them in its warnings.
    """
    # The demo's policy (Huzhou) counts 普通门诊 + 慢病门诊 in A, so its disease standards measure 慢病门诊.
    base, disease = history_per_class(year, disease_visit_types=(VisitType.CHRONIC.value,))
    missing = {disease_ids[code] for code in cat.CAPITATION_MISSING if code in disease_ids}
    rows = []
    for (insurance, band, disease_id), (person_months, fund) in sorted(
        [((i, b, None), v) for (i, b), v in base.items()] + list(disease.items()), key=lambda item: str(item[0]),
    ):
        if not person_months or disease_id in missing:
            continue
        # 元 per person-year = Σ 统筹支付 ÷ (person-months ÷ 12), to whole 元 as a published table has it
        amount = (fund * 12 / person_months).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
        rows.append(CapitationStandard(
            year=year, insurance_type=insurance, age_band=band, disease_id=disease_id, amount=amount,
            status=ApprovalStatus.APPROVED, approved_at=approved_at, approved_by=approver,
        ))
    return rows


def write_parameters(city, totals, log, approver=None):
    year = city.year
    rng = random.Random(f"demo-parameters-{year}")
    approved_at = timezone.make_aware(datetime.datetime(year - 1, 12, 20, 10, 0))
    ids = city.disease_ids
    created = {}

    capitation = capitation_standards(year, ids, approver, approved_at)
    created[CapitationStandard] = bulk_create_with_history(capitation, CapitationStandard)

    created[SpecialStandard] = bulk_create_with_history([
        SpecialStandard(year=year, disease_id=ids[code], amount=yuan(std), status=ApprovalStatus.APPROVED,
                        approved_at=approved_at, approved_by=approver)
        for code, _n, _k, _p, std in cat.SPECIAL_CLASS2
    ], SpecialStandard)

    created[DrgGroup] = bulk_create_with_history([
        DrgGroup(
            year=year, code=code, name=name, average_cost=Decimal(average).quantize(CENT),
            base_points=(Decimal(average) * 100 / cat.CITY_AVERAGE_CASE_COST).quantize(Decimal("0.0001")),
            bed_day_points=Decimal(bed_points) if bed_points else None, same_price=same_price, tcm_support=tcm,
        )
        for code, name, average, _stay, _dx, _op, _lvl, same_price, tcm, bed_points in cat.DRG_GROUPS
    ], DrgGroup)

    coefficients = []
    for n, inst in enumerate(city.institutions):
        inpatient = inst.level != "基层" or inst.grassroots_kind in ("乡镇卫生院", "社区卫生服务中心")
        if not inpatient or n % 17 == 5:  # a few without a coefficient: they count as 1
            continue
        low, high = {"三级": (105, 115), "二级": (95, 102), "一级": (85, 90), "基层": (72, 80)}[inst.level]
        coefficients.append(DrgCoefficient(
            year=year, institution_id=inst.pk, coefficient=Decimal(rng.randint(low, high)) / 100,
        ))
    created[DrgCoefficient] = bulk_create_with_history(coefficients, DrgCoefficient, batch_size=500)

    created[BedDayQuota] = bulk_create_with_history([
        BedDayQuota(year=year, level=level, category=category, amount=yuan(amount))
        for category, by_level in cat.BED_DAY_QUOTAS.items() for level, amount in by_level.items()
    ], BedDayQuota)

    created[DiseaseStandard] = bulk_create_with_history([
        DiseaseStandard(year=year, disease_id=ids[code], main_operation=op, level=level, amount=yuan(amount))
        for code, _n, op, standards in cat.PER_DISEASE for level, amount in standards.items()
    ], DiseaseStandard)

    budgets, payments, assessments = [], [], []
    alliance_budget = {}
    for alliance in city.alliances:
        county = city.counties[alliance.county]
        siblings = len(county.alliances)
        total = 0
        for insurance in ("职工", "居民"):
            spent = totals.general_fund[(alliance.county, insurance)] // siblings
            amount = _round_to(spent * rng.randint(96, 106) // 100, 100)
            total += amount
            budgets.append(Budget(year=year, scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code,
                                  insurance_type=insurance, amount=yuan(amount)))
        alliance_budget[alliance.code] = total
        assessments.append(Assessment(
            year=year, unit_code=alliance.code, score=Decimal(rng.randint(8200, 9800)) / 100,
            retention_bonus=Decimal(rng.choice((0, 0, 2, 5))), overspend_reduction=Decimal(rng.choice((0, 0, 3, 5))),
        ))
    for pool, spent in sorted(totals.drg_fund_by_pool.items()):
        budgets.append(Budget(year=year, scheme=Scheme.DRG, unit_code=pool, insurance_type="",
                              amount=yuan(_round_to(spent * rng.randint(95, 105) // 100, 100))))
    budgets.append(Budget(year=year, scheme=Scheme.SPECIAL_OUTPATIENT, unit_code=cat.CITY[0],
                          insurance_type="", amount=yuan(_round_to(totals.class2_fund * 103 // 100, 100))))
    created[Budget] = bulk_create_with_history(budgets, Budget, batch_size=500)

    for n, (inst_index, _fee) in enumerate(sorted(totals.fd_june_fee_by_institution.items())):
        if n % 4 != 3:  # the rest have no assessment row: their score counts as 100
            assessments.append(Assessment(year=year, unit_code=city.institutions[inst_index].code,
                                          score=Decimal(rng.randint(7500, 10000)) / 100))
    created[Assessment] = bulk_create_with_history(assessments, Assessment, batch_size=500)

    # A few months paid before the portal was in use (SPEC §4 payments, source 导入).
    def pay(month, scheme, unit_code, amount_fen):
        payments.append(Payment(year=year, month=month, scheme=scheme, unit_code=unit_code,
                                amount=(Decimal(int(amount_fen)) / 100).quantize(CENT, rounding=ROUND_HALF_UP)))

    for month in (1, 2, 3):
        for code, total in alliance_budget.items():
            pay(month, Scheme.ALLIANCE_BUDGET, code, total * 95 // 1200)
        for inst_index, spent in sorted(totals.drg_fund_by_institution.items()):
            pay(month, Scheme.DRG, city.institutions[inst_index].code, spent * 90 // 1200)
        for inst_index, quota in sorted(totals.class2_quota_by_institution.items()):
            pay(month, Scheme.SPECIAL_OUTPATIENT, city.institutions[inst_index].code, quota * 95 // 1200)
    for inst_index, fees in sorted(totals.fd_june_fee_by_institution.items()):
        pay(7, Scheme.FAMILY_DOCTOR, city.institutions[inst_index].code, fees // 2)  # mid-year advance, 50%
    created[Payment] = bulk_create_with_history(payments, Payment, batch_size=1000)
    log(f"  标准与参数：{sum(len(v) for v in created.values())} 行")
    return {model: len(rows) for model, rows in created.items()}
