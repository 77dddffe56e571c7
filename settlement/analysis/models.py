"""The 运行分析 entry of the admin, and the DRG indices' pre-aggregates (SPEC §10, issue 16).

DrgAnalysis: a proxy of the inpatient cases the page reads, so that the page has a place in the
navigation (分析) and a permission of its own (view_drganalysis), scoped like the cases.

DrgIndexRow: the figures of analysis.drg per (level, institution / pool, group, month) of a year,
written by aggregates.rebuild_year from the one statement drg.indices runs, so the page reads a few
hundred rows instead of scanning the year's cases. Derived data only: no history, no admin, never
edited by hand. DrgAnalysisYear records what a rebuild stood on (the DRG run and the thresholds);
when either has changed since, the page computes live and says so.
"""
from django.db import models

from settlement.models import InpatientCase

__all__ = ["DrgAnalysis", "DrgAnalysisYear", "DrgIndexRow"]


class DrgAnalysis(InpatientCase):
    class Meta:
        proxy = True
        verbose_name = "DRG运行分析"
        verbose_name_plural = verbose_name
        default_permissions = ("view",)


class DrgAnalysisYear(models.Model):
    year = models.PositiveSmallIntegerField("年度", unique=True)
    run_id = models.BigIntegerField("依据结算批次ID", null=True)
    thresholds = models.JSONField("高低倍率阈值", default=dict)
    built_at = models.DateTimeField("生成时间")
    seconds = models.DecimalField("耗时（秒）", max_digits=10, decimal_places=2)

    class Meta:
        verbose_name = "DRG运行分析汇总年度"
        verbose_name_plural = verbose_name


MONEY = {"max_digits": 18, "decimal_places": 2}
INDEX = {"max_digits": 12, "decimal_places": 4, "null": True}


class DrgIndexRow(models.Model):
    """One row of drg.Indices before the point value is applied (结算盈亏 = points × PV − 统筹支付 is
    taken at read time from the run's PV). CMI and the consumption indices are stored already
    rounded to 4 places, as Indices carries them; every other figure is a count or an exact sum."""

    year = models.PositiveSmallIntegerField("年度")
    level = models.CharField("层级", max_length=20)
    institution_id = models.BigIntegerField("机构ID", null=True)
    pool_code = models.CharField("统筹池", max_length=64, null=True)
    drg_code = models.CharField("DRG编码", max_length=32, null=True)
    month = models.PositiveSmallIntegerField("月份", null=True)
    cases = models.IntegerField("病例数")
    grouped_cases = models.IntegerField("入组病例数")
    groups = models.IntegerField("DRG组数")
    cmi = models.DecimalField("CMI", **INDEX)
    cost_index = models.DecimalField("费用消耗指数", **INDEX)
    time_index = models.DecimalField("时间消耗指数", **INDEX)
    low_risk_cases = models.IntegerField("低风险组病例数")
    low_risk_deaths = models.IntegerField("低风险组死亡数")
    high_cases = models.IntegerField("高倍率病例数")
    low_cases = models.IntegerField("低倍率病例数")
    total_cost = models.DecimalField("总费用", **MONEY)
    los_days = models.BigIntegerField("住院天数")
    points = models.DecimalField("点数", max_digits=20, decimal_places=4)
    fund_paid = models.DecimalField("统筹支付", **MONEY)
    personal_paid = models.DecimalField("个人负担", **MONEY)

    class Meta:
        verbose_name = "DRG运行分析汇总"
        verbose_name_plural = verbose_name
        indexes = [models.Index(fields=["year", "pool_code", "level"], name="drg_index_row_pool")]
