"""The FJ clauses a benefit table must keep before it is approved (SPEC §6.8 approval checks).

Pure functions of the table's rows and the `benefits` policy: no ORM, so the admin shows the same
results the approval refuses on.
"""
import dataclasses
from decimal import Decimal

from .params import CROSS_COUNTY_LIMIT

RESIDENT = "居民"
PRIMARY = "基层"
OUTPATIENT, INPATIENT = "门诊", "住院"
CHRONIC = "慢病门诊"
GAP_POINTS = Decimal("10")
CHRONIC_MIN = Decimal("60")
TUBERCULOSIS_MIN = Decimal("70")


@dataclasses.dataclass(frozen=True)
class RuleRow:
    insurance_type: str
    care_type: str
    level: str
    visit_type: str
    disease_prefix: str
    deductible: Decimal
    ratio: Decimal
    annual_limit: Decimal | None = None


@dataclasses.dataclass(frozen=True)
class CheckResult:
    clause: str
    passed: bool
    detail: str


def most_specific(rows, insurance_type, care_type, level, visit_type="", disease_code=""):
    """The row that applies: disease prefix (longest first), then 门诊类型, then the general row."""
    candidates = [
        row for row in rows
        if (row.insurance_type, row.care_type, row.level) == (insurance_type, care_type, level)
        and row.visit_type in ("", visit_type)
        and (not row.disease_prefix or (disease_code or "").upper().startswith(row.disease_prefix))
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (bool(r.disease_prefix), len(r.disease_prefix), bool(r.visit_type)))


def _general(rows, care_type, level):
    return most_specific(rows, RESIDENT, care_type, level)


def check_table(rows, params):
    """Every clause with whether the table keeps it and why, in Chinese."""
    return [
        *(_primary_gap(rows, care_type) for care_type in (OUTPATIENT, INPATIENT)),
        _primary_outpatient_deductible(rows),
        _chronic(rows),
        _tuberculosis(rows, params.tuberculosis_prefixes),
        _cross_county(params),
        _one_inpatient_limit(rows),
    ]


def failures(results):
    return [result for result in results if not result.passed]


def _primary_gap(rows, care_type):
    clause = f"居民{care_type}基层报销比例高于其他各级医疗机构不少于10个百分点"
    primary = _general(rows, care_type, PRIMARY)
    others = sorted({row.level for row in rows if (row.insurance_type, row.care_type) == (RESIDENT, care_type)} - {PRIMARY})
    if primary is None:
        return CheckResult(clause, False, f"缺少居民{care_type}基层的一般规则（不限门诊类型和病种）")
    short = []
    for level in others:
        other = _general(rows, care_type, level)
        if other is not None and primary.ratio - other.ratio < GAP_POINTS:
            short.append(f"{level}{other.ratio}%")
    if short:
        return CheckResult(clause, False, f"基层为{primary.ratio}%，与{'、'.join(short)}相差不足10个百分点")
    return CheckResult(clause, True, f"基层为{primary.ratio}%")


def _primary_outpatient_deductible(rows):
    clause = "居民基层门诊不设起付标准"
    charged = [row for row in rows if (row.insurance_type, row.care_type, row.level) == (RESIDENT, OUTPATIENT, PRIMARY)
               and row.deductible != 0]
    if charged:
        shown = "、".join(f"{row.visit_type or '一般'}{('·' + row.disease_prefix) if row.disease_prefix else ''}"
                         f"{row.deductible}元" for row in charged)
        return CheckResult(clause, False, f"起付标准应为0，当前：{shown}")
    return CheckResult(clause, True, "起付标准为0")


def _chronic(rows):
    clause = "居民基层慢病门诊报销比例不低于60%"
    row = most_specific(rows, RESIDENT, OUTPATIENT, PRIMARY, CHRONIC)
    if row is None:
        return CheckResult(clause, False, "缺少居民基层慢病门诊适用的规则")
    if row.ratio < CHRONIC_MIN:
        return CheckResult(clause, False, f"适用的报销比例为{row.ratio}%，低于60%")
    return CheckResult(clause, True, f"{row.ratio}%")


def _tuberculosis(rows, prefixes):
    clause = "居民基层门诊肺结核报销比例不低于70%"
    visit_types = sorted({row.visit_type for row in rows if (row.insurance_type, row.care_type, row.level)
                          == (RESIDENT, OUTPATIENT, PRIMARY)} | {""})
    low = []
    for prefix in prefixes:
        for visit_type in visit_types:
            row = most_specific(rows, RESIDENT, OUTPATIENT, PRIMARY, visit_type, prefix)
            if row is None:
                continue
            if row.ratio < TUBERCULOSIS_MIN:
                low.append(f"{prefix}{('（' + visit_type + '）') if visit_type else ''}适用{row.ratio}%")
    if low:
        return CheckResult(clause, False, f"{'、'.join(low)}，低于70%")
    return CheckResult(clause, True, "不低于70%")


def _cross_county(params):
    clause = "市内跨县就医报销比例降低不超过10个百分点"
    if params.cross_county_points > CROSS_COUNTY_LIMIT:
        return CheckResult(clause, False, f"待遇政策参数设为降低{params.cross_county_points}个百分点，超过10个百分点")
    return CheckResult(clause, True, f"降低{params.cross_county_points}个百分点")


def _one_inpatient_limit(rows):
    # Not an FJ clause but what the arithmetic needs: the inpatient 年度限额 is per person-year
    # across levels (SPEC §6.8), so every inpatient row of one 险种 must name the same one.
    clause = "同一险种各级住院年度限额一致（住院限额按人按年计算）"
    limits = {}
    for row in rows:
        if row.care_type == INPATIENT:
            limits.setdefault(row.insurance_type, set()).add(row.annual_limit)
    mixed = [f"{kind}：{'、'.join('不限' if v is None else f'{v}元' for v in sorted(values, key=lambda v: (v is None, v)))}"
             for kind, values in sorted(limits.items()) if len(values) > 1]
    if mixed:
        return CheckResult(clause, False, "；".join(mixed))
    return CheckResult(clause, True, "一致")
