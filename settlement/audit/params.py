"""The parameters of the audit rules (policy scheme `audit`), defaults from the SPEC §9 table.

One policy row holds every rule's thresholds, edited and approved like a payment policy; a rule reads
only its own fields, never a literal.
"""
import dataclasses
from decimal import Decimal

from settlement.models import Scheme

AUDIT = Scheme.AUDIT.value


def _param(default, label, low=None, high=None):
    return dataclasses.field(default=default, metadata={"label": label, "min": low, "max": high})


@dataclasses.dataclass(frozen=True)
class AuditParams:
    split_days: int = _param(15, "分解住院：再次入院间隔天数上限（SPL01）", 0, 90)
    split_exempt_diagnoses: tuple[str, ...] = dataclasses.field(
        default=("Z51.0", "Z51.1"), metadata={"label": "分解住院：豁免的主诊断（放化疗，按编码前缀）（SPL01）"},
    )
    low_stay_days: int = _param(2, "低标准入院：住院天数上限（LOW01）", 1, 30)
    low_cost_ratio: Decimal = _param(Decimal("0.3"), "低标准入院：总费用占病组均次费用比例上限（LOW01）", Decimal("0"), Decimal("1"))
    high_multiple_tertiary: Decimal = _param(Decimal("3"), "高倍率病例：三级医院倍数（HIC01）", Decimal("1"), Decimal("20"))
    high_multiple_other: Decimal = _param(Decimal("2"), "高倍率病例：其他医院倍数（HIC01）", Decimal("1"), Decimal("20"))
    # Not a rule of its own: the 低倍率病例 count of the DRG operating analysis (SPEC §10), kept beside
    # HIC01's multiples so the analysis's high and low cases come from one policy.
    drg_low_multiple: Decimal = _param(Decimal("0.4"), "低倍率病例：总费用低于病组均次费用的倍数（DRG运行分析）", Decimal("0"), Decimal("1"))
    upcoding_points: Decimal = _param(Decimal("20"), "高套分组：重症组占比高于全市的百分点（UPC01）", Decimal("0"), Decimal("100"))
    upcoding_min_cases: int = _param(20, "高套分组：ADRG最少病例数（UPC01）", 1, 100000)
    monthly_visit_limit: int = _param(10, "超频就诊：每月同一机构就诊次数上限（FRQ01）", 1, 1000)
    same_day_institutions: int = _param(3, "同日多机构就诊：机构数下限（FRQ02）", 2, 100)
    unserved_months: int = _param(6, "签约未履约：年内在约月数下限（SRV01）", 1, 12)

