"""Payment policies, settlement runs and their per-unit results (SPEC §7).

Imported at the end of settlement/models.py so that Django registers them in the `settlement` app.
"""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from alliances.models import Region
from alliances.scope import CITY_OWNED, OUT_OF_WRITE_SCOPE, ScopedModel
from settlement.approval import Guarded
from settlement.models import ApprovalStatus, Job, Scheme, UnitScoped, money

__all__ = ["PaymentPolicy", "RunStatus", "SettlementRun", "RunUnit", "UnitResult"]


class DocumentField(models.JSONField):
    """A JSONField for large documents (a unit's gathered inputs).

    Django inserts several rows at once through UNNEST of one array per column, and psycopg escapes
    every quote of every document inside that array literal in Python: for a city's twenty alliances
    that took 0.14 s of a capitation run. A field with its own placeholder is inserted as plain
    VALUES rows instead, which the driver quotes in C.
    """

    def get_placeholder(self, value, compiler, connection):
        return "%s"


def signed_money(verbose_name, **kwargs):
    # Results carry signs (overspend, refunds), so no MinValueValidator here.
    return money(verbose_name, validators=[], **kwargs)


class PaymentPolicy(ScopedModel, Guarded, models.Model):
    """支付政策: one scheme's parameters for a year, city-wide or for one county."""

    scheme = models.CharField("方案", max_length=20, choices=Scheme.choices)
    year = models.PositiveSmallIntegerField("年度")
    region = models.ForeignKey(
        Region, verbose_name="县区", null=True, blank=True, on_delete=models.PROTECT, related_name="payment_policies",
        help_text="空为全市统一政策；县区政策优先于全市政策",
    )
    name = models.CharField("政策名称", max_length=100)
    parameters = models.JSONField("政策参数", default=dict, blank=True, help_text="金额与比例写成字符串，如\"0.85\"")
    status = models.CharField("状态", max_length=3, choices=ApprovalStatus.choices, default=ApprovalStatus.DRAFT)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="审批人", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    approved_at = models.DateTimeField("审批时间", null=True, blank=True)
    version = models.PositiveIntegerField("版本", default=1, editable=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "支付政策"
        verbose_name_plural = verbose_name
        ordering = ["-year", "scheme", "region__code"]
        constraints = [
            models.UniqueConstraint(fields=["scheme", "year", "region"], name="payment_policy_key", nulls_distinct=False),
        ]

    def __str__(self):
        where = self.region.name if self.region_id else "全市"
        return f"{self.year} {self.get_scheme_display()}（{where}）：{self.name}"

    def locked_reason(self):
        if self.status == ApprovalStatus.APPROVED:
            return f"支付政策“{self}”已审批，不能再修改或删除"
        return None

    def write_scope_refusal(self, scope):
        # A county reads the city-wide policy but writes only its own county's.
        if scope.is_regional and self.region_id in scope.region_ids and scope.role == "county":
            return None
        return OUT_OF_WRITE_SCOPE if self.region_id else CITY_OWNED

    @classmethod
    def scope_filter(cls, scope):
        # City-wide policies are public reference; a county sees its own on top.
        if scope.sees_all:
            return Q()
        if scope.is_regional:
            return Q(region__isnull=True) | Q(region__in=scope.region_ids)
        if scope.role is None:
            return Q(pk__in=[])
        return Q()

    def typed_parameters(self):
        from .base import get_rule
        from .params import from_json

        return from_json(get_rule(self.scheme).params_class, self.parameters)

    def clean(self):
        from .base import get_rule

        try:
            get_rule(self.scheme)
        except KeyError as exc:
            raise ValidationError({"scheme": str(exc.args[0])}) from None
        try:
            self.typed_parameters()
        except ValidationError as exc:
            raise ValidationError({"parameters": exc.messages}) from None


class RunStatus(models.TextChoices):
    DRAFT = "draft", "草稿"
    COMPUTING = "computing", "计算中"
    COMPUTED = "computed", "已计算"
    APPROVED = "approved", "已审核"
    PAID = "paid", "已拨付"
    FAILED = "failed", "失败"


class SettlementRun(ScopedModel, Guarded, models.Model):
    """One settlement of a scheme for a year, city-wide or for one county, in one version."""

    scheme = models.CharField("方案", max_length=20, choices=Scheme.choices)
    year = models.PositiveSmallIntegerField("年度")
    region = models.ForeignKey(
        Region, verbose_name="县区", null=True, blank=True, on_delete=models.PROTECT, related_name="settlement_runs",
        help_text="空为全市",
    )
    version = models.PositiveIntegerField("版本", default=1)
    status = models.CharField("状态", max_length=10, choices=RunStatus.choices, default=RunStatus.DRAFT)
    policy = models.ForeignKey(
        PaymentPolicy, verbose_name="支付政策", null=True, blank=True, on_delete=models.PROTECT, related_name="runs",
    )
    parameters = models.JSONField("政策参数快照", default=dict, blank=True)
    units_total = models.PositiveIntegerField("结算单位数", default=0)
    units_done = models.PositiveIntegerField("已完成单位数", default=0)
    # Each start (and each resume that has to gather again) is a new computation; its unit inputs
    # and tasks carry the number, so nothing stored or sent by an earlier one is ever used (SPEC §7).
    computation = models.PositiveIntegerField("计算轮次", default=0)
    # Set in the transaction that stores the units: only then may a resume skip the gather.
    gathered_computation = models.PositiveIntegerField("已汇总的计算轮次", null=True, blank=True)
    warnings = models.JSONField("提示", default=list, blank=True)
    failure_reason = models.TextField("失败原因", blank=True)
    job = models.ForeignKey(Job, verbose_name="后台任务", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="发起人", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField("创建时间", auto_now_add=True)
    started_at = models.DateTimeField("开始时间", null=True, blank=True)
    finished_at = models.DateTimeField("完成时间", null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="审核人", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    approved_at = models.DateTimeField("审核时间", null=True, blank=True)
    paid_at = models.DateTimeField("拨付时间", null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "结算批次"
        verbose_name_plural = verbose_name
        ordering = ["-year", "scheme", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["scheme", "year", "region", "version"], name="settlement_run_version", nulls_distinct=False,
            ),
            # The database itself refuses a second concurrent computation of the same settlement.
            models.UniqueConstraint(
                fields=["scheme", "year", "region"], condition=Q(status="computing"),
                name="settlement_run_one_computing", nulls_distinct=False,
            ),
        ]

    def __str__(self):
        where = self.region.name if self.region_id else "全市"
        return f"{self.year}年{self.get_scheme_display()}（{where}）第{self.version}版"

    @property
    def region_code(self):
        return self.region.code if self.region_id else None

    @property
    def percent(self):
        if not self.units_total:
            return 100 if self.status in (RunStatus.COMPUTED, RunStatus.APPROVED, RunStatus.PAID) else 0
        return min(100, round(100 * self.units_done / self.units_total))

    @property
    def is_read_only(self):
        return self.status in (RunStatus.APPROVED, RunStatus.PAID)

    def locked_reason(self):
        if self.is_read_only:
            return f"{self}已{self.get_status_display()}，不能再修改；如需重算请发起新版本"
        return None

    def allowed_locked_change(self, stored, changed):
        # The one step after approval: recording that the money went out.
        return (stored.status == RunStatus.APPROVED and self.status == RunStatus.PAID
                and changed <= {"status", "paid_at"})

    def write_scope_refusal(self, scope):
        if scope.role == "county" and self.region_id in scope.region_ids:
            return None
        return OUT_OF_WRITE_SCOPE if self.region_id else CITY_OWNED

    @classmethod
    def scope_filter(cls, scope):
        if scope.sees_all:
            return Q()
        units = UnitResult.objects.filter(scope.unit_code_q("unit_code")).values("run_id")
        if scope.is_regional:
            return Q(region__in=scope.region_ids) | Q(pk__in=units)
        if scope.is_hospital:
            return Q(pk__in=units)
        return Q(pk__in=[])


class RunUnit(models.Model):
    """A unit of a run with its gathered inputs (codec-encoded), so unit tasks can be re-run alike."""

    run = models.ForeignKey(SettlementRun, verbose_name="结算批次", on_delete=models.CASCADE, related_name="units")
    unit_code = models.CharField("单位编码", max_length=40)
    unit_name = models.CharField("单位名称", max_length=200, blank=True)
    inputs = DocumentField("输入数据", default=dict)
    paid = signed_money("已拨付（拨付记录）", default=0)
    # Taken at gather time with its findings (settlement.audit.RecoveryItem), so that a resumed or
    # redelivered unit deducts exactly what the computation started with.
    recovery = signed_money("违规扣款", default=0)
    done = models.BooleanField("已完成", default=False)
    computation = models.PositiveIntegerField("计算轮次", default=0)

    class Meta:
        verbose_name = "结算单位输入"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["run", "unit_code"], name="run_unit_key")]

    def __str__(self):
        return f"{self.run} · {self.unit_code}"


class UnitResult(UnitScoped, Guarded, models.Model):
    """Every figure of one settled unit; details keep each intermediate so a statement can be explained."""

    run = models.ForeignKey(SettlementRun, verbose_name="结算批次", on_delete=models.CASCADE, related_name="results")
    unit_code = models.CharField("单位编码", max_length=40)
    unit_name = models.CharField("单位名称", max_length=200, blank=True)
    quota = signed_money("预算额度")
    actual = signed_money("实际支出")
    surplus = signed_money("结余超支")
    unit_part = signed_money("单位分担留用")
    fund_part = signed_money("基金分担留用")
    entitled = signed_money("应得金额")
    paid = signed_money("已拨付")
    recovery = signed_money("违规扣款", default=0)
    amount = signed_money("年终清算金额")
    details = models.JSONField("计算明细", default=dict, blank=True)
    warnings = models.JSONField("提示", default=list, blank=True)
    computed_at = models.DateTimeField("计算时间", auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "单位结算结果"
        verbose_name_plural = verbose_name
        ordering = ["run", "unit_code"]
        constraints = [models.UniqueConstraint(fields=["run", "unit_code"], name="unit_result_key")]

    def __str__(self):
        return f"{self.unit_name or self.unit_code}（{self.run}）"

    lock_is_own_status = False

    def locked_reason(self):
        # Read through the base manager: the run may be outside a caller's scope-restricted query.
        run = SettlementRun._base_manager.only("status", "scheme", "year", "region", "version").get(pk=self.run_id)
        return run.locked_reason()

    def write_scope_refusal(self, scope):
        return "单位结算结果由结算计算生成，不能手工修改"


from .case_requests import *  # noqa: E402,F401,F403  (特病单议 / 新技术 and 退出按病种付费 requests)
from .simulation_models import *  # noqa: E402,F401,F403  (政策模拟, SPEC §11)
