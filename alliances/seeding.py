"""Default rows created by migration and re-created after a flush (see contracts/seeding.py)."""
from decimal import Decimal

KF = "开封市紧密型县域医共体医疗保障管理实施方案（试行）"

DEFAULT_KPI_TARGETS = [
    # (kpi, comparison, target, tolerance, source)
    ("county_visit_rate", "gte", Decimal("90"), Decimal("0"), f"{KF}三(一)：县域内就诊率达到90%"),
    ("grassroots_visit_rate", "approx", Decimal("65"), Decimal("5"), f"{KF}三(一)：基层就诊率达到65%左右"),
    ("total_cost_growth", "lte", Decimal("8"), Decimal("0"), f"{KF}三(二)：县域内医疗总费用年增长率不超过8%"),
    # "降低个人负担…控制在30%左右": a lower burden is the aim, so below 30% is never penalised.
    ("personal_burden", "lte", Decimal("30"), Decimal("0"), f"{KF}三(四)：个人实际负担控制在30%左右"),
]


def ensure_kpi_targets(KpiTarget=None):
    """The city-wide default targets exist; an edited target is left as the bureau set it."""
    if KpiTarget is None:
        from .models import KpiTarget
    for kpi, comparison, target, tolerance, source in DEFAULT_KPI_TARGETS:
        KpiTarget.objects.get_or_create(
            kpi=kpi, year=None,
            defaults={"comparison": comparison, "target": target, "tolerance": tolerance, "source": source},
        )
