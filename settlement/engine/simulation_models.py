"""Policy simulations (政策模拟, SPEC §11) and their per-unit figures.

A simulation is deliberately not a SettlementRun: approval, payment and the settlement export all
take runs, so none of them can ever be handed a simulation. It keeps a snapshot of the base run's
figures beside the simulated ones, so it still says what it compared after the base run (a draft)
is computed again.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q

from alliances.models import Region
from alliances.scope import CITY_OWNED, OUT_OF_WRITE_SCOPE, ScopedModel
from settlement.models import Job, Scheme, UnitScoped

from .models import SettlementRun, signed_money

__all__ = ["Simulation", "SimulationStatus", "SimulationUnit", "FIGURE_FIELDS"]

# The figures of a unit, in the order of SPEC §5's export (Q, A, S, parts, E, 已拨付, 年终清算金额).
FIGURE_FIELDS = ("quota", "actual", "surplus", "unit_part", "fund_part", "entitled", "paid", "amount")


class SimulationStatus(models.TextChoices):
    QUEUED = "queued", "排队中"
    COMPUTING = "computing", "计算中"
    COMPUTED = "computed", "已完成"
    FAILED = "failed", "失败"


class Simulation(ScopedModel, models.Model):
    base_run = models.ForeignKey(
        SettlementRun, verbose_name="基准结算批次", on_delete=models.PROTECT, related_name="simulations",
    )
    # Which computation of the base run the figures come from (a draft run may be computed again).
    base_computation = models.PositiveIntegerField("基准计算轮次", default=0)
    number = models.PositiveIntegerField("模拟序号", default=1)
    scheme = models.CharField("方案", max_length=20, choices=Scheme.choices)
    year = models.PositiveSmallIntegerField("年度")
    region = models.ForeignKey(
        Region, verbose_name="县区", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="空为全市",
    )
    note = models.CharField("说明", max_length=200, blank=True)
    parameters = models.JSONField("模拟政策参数", default=dict, blank=True)
    changes = models.JSONField("调整的参数", default=dict, blank=True)
    factors = models.JSONField("调整系数", default=dict, blank=True)
    regathered = models.BooleanField("重新汇总数据", default=False)
    status = models.CharField("状态", max_length=10, choices=SimulationStatus.choices, default=SimulationStatus.QUEUED)
    units_total = models.PositiveIntegerField("单位数", default=0)
    units_done = models.PositiveIntegerField("已完成单位数", default=0)
    warnings = models.JSONField("提示", default=list, blank=True)
    failure_reason = models.TextField("失败原因", blank=True)
    job = models.ForeignKey(Job, verbose_name="后台任务", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="发起人", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField("创建时间", auto_now_add=True)
    finished_at = models.DateTimeField("完成时间", null=True, blank=True)

    class Meta:
        verbose_name = "政策模拟"
        verbose_name_plural = verbose_name
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["base_run", "number"], name="simulation_number")]

    def __str__(self):
        return f"{self.base_run}·模拟{self.number}"

    @property
    def region_code(self):
        return self.region.code if self.region_id else None

    @property
    def percent(self):
        if not self.units_total:
            return 100 if self.status == SimulationStatus.COMPUTED else 0
        return min(100, round(100 * self.units_done / self.units_total))

    def write_scope_refusal(self, scope):
        if scope.role == "county" and self.region_id in scope.region_ids:
            return None
        return OUT_OF_WRITE_SCOPE if self.region_id else CITY_OWNED

    @classmethod
    def scope_filter(cls, scope):
        # As its base run: a county sees its county's, a hospital those with one of its units.
        if scope.sees_all:
            return Q()
        units = SimulationUnit.objects.filter(scope.unit_code_q("unit_code")).values("simulation_id")
        if scope.is_regional:
            return Q(region__in=scope.region_ids) | Q(pk__in=units)
        if scope.is_hospital:
            return Q(pk__in=units)
        return Q(pk__in=[])


class SimulationUnit(UnitScoped, models.Model):
    """One unit of a simulation: the base run's figures and the simulated ones."""

    simulation = models.ForeignKey(Simulation, verbose_name="政策模拟", on_delete=models.CASCADE, related_name="units")
    unit_code = models.CharField("单位编码", max_length=40)
    unit_name = models.CharField("单位名称", max_length=200, blank=True)
    # A fresh gather may find a unit the base run did not have, or lose one; its other side is 0.
    in_base = models.BooleanField("基准中有此单位", default=True)
    in_simulation = models.BooleanField("模拟中有此单位", default=True)
    base_quota = signed_money("基准预算额度", default=0)
    base_actual = signed_money("基准实际支出", default=0)
    base_surplus = signed_money("基准结余超支", default=0)
    base_unit_part = signed_money("基准单位分担留用", default=0)
    base_fund_part = signed_money("基准基金分担留用", default=0)
    base_entitled = signed_money("基准应得金额", default=0)
    base_paid = signed_money("基准已拨付", default=0)
    base_amount = signed_money("基准年终清算金额", default=0)
    quota = signed_money("模拟预算额度", default=0)
    actual = signed_money("模拟实际支出", default=0)
    surplus = signed_money("模拟结余超支", default=0)
    unit_part = signed_money("模拟单位分担留用", default=0)
    fund_part = signed_money("模拟基金分担留用", default=0)
    entitled = signed_money("模拟应得金额", default=0)
    paid = signed_money("模拟已拨付", default=0)
    amount = signed_money("模拟年终清算金额", default=0)
    details = models.JSONField("模拟计算明细", default=dict, blank=True)
    warnings = models.JSONField("提示", default=list, blank=True)

    class Meta:
        verbose_name = "模拟单位结果"
        verbose_name_plural = verbose_name
        ordering = ["simulation", "unit_code"]
        constraints = [models.UniqueConstraint(fields=["simulation", "unit_code"], name="simulation_unit_key")]

    def __str__(self):
        return f"{self.unit_name or self.unit_code}（{self.simulation}）"

    def write_scope_refusal(self, scope):
        return "模拟结果由模拟计算生成，不能手工修改"

    def difference(self, field):
        return getattr(self, field) - getattr(self, f"base_{field}")
