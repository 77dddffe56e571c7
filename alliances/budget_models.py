"""The "one total" global budget of SPEC §6.4: application workflow, budget composition, member
allocation, KPI targets and assessment weights.

Imported by alliances.models so Django registers these models with the alliances app. No module
here imports settlement (settlement.models imports alliances.models); services reach it through alliances.hooks.
"""
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from .scope import OUT_OF_WRITE_SCOPE, ScopedModel, path_value

ZERO = Decimal("0")
# KF §4(一)5: "预留不超过10%的年度风险储备金".
RISK_RESERVE_CAP = Decimal("0.10")


def money(verbose_name, **kwargs):
    kwargs.setdefault("validators", [MinValueValidator(ZERO)])
    kwargs.setdefault("default", ZERO)
    return models.DecimalField(verbose_name, max_digits=16, decimal_places=2, **kwargs)


class ApplicationStatus(models.TextChoices):
    """Values after DRAFT equal BudgetStatus values, so the alliance mirrors its application."""

    DRAFT = "草稿", "草稿（总医院填写中）"
    SUBMITTED = "已申请", "已申请（待卫健委确认七统一）"
    HEALTH_CONFIRMED = "卫健已确认", "卫健委已确认七统一（待县区医保局确认）"
    COUNTY_CONFIRMED = "县区已确认", "县区医保局已确认（待市医保局审批）"
    APPROVED = "已批准", "已批准（实行总额付费）"
    RETURNED = "已退回", "已退回（总医院修改后重新提交）"
    WITHDRAWN = "已退出", "已退出总额付费"


OPEN_STATUSES = (
    ApplicationStatus.DRAFT, ApplicationStatus.SUBMITTED, ApplicationStatus.HEALTH_CONFIRMED,
    ApplicationStatus.COUNTY_CONFIRMED, ApplicationStatus.APPROVED, ApplicationStatus.RETURNED,
)

# The seven unified-management requirements of the KF annex ("行政、人员、业务、药械、财务、绩效、信息").
SEVEN_UNIFIED = (
    ("unified_administration", "行政统一"),
    ("unified_staff", "人员统一"),
    ("unified_business", "业务统一"),
    ("unified_drugs", "药械统一"),
    ("unified_finance", "财务统一"),
    ("unified_performance", "绩效统一"),
    ("unified_information", "信息统一"),
)

DEFAULT_STATEMENT = (
    "我总医院符合行政、人员、业务、药械、财务、绩效、信息等统一管理要求，现申请医保基金总额付费。"
    "今后，我总医院将严格执行《开封市紧密型县域医共体医疗保障管理实施方案（试行）》的相关规定，"
    "做好内部医保基金分配、使用与监督。"
)


class AllianceScoped(ScopedModel):
    """Rows hanging off an alliance: a county sees its county's, a hospital its alliances'."""

    scope_alliance: str = "alliance"

    @classmethod
    def scope_filter(cls, scope):
        if scope.is_hospital:
            return Q(**{f"{cls.scope_alliance}_id__in": scope.alliance_ids})
        return super().scope_filter(scope)

    def write_scope_refusal(self, scope):
        if scope.is_hospital:
            return None if path_value(self, self.scope_alliance) in scope.alliance_ids else OUT_OF_WRITE_SCOPE
        return super().write_scope_refusal(scope)


class BudgetApplication(AllianceScoped, models.Model):
    """关于医保基金总额付费的请示 (KF annex template), filed by the alliance's lead hospital."""

    alliance = models.ForeignKey(
        "alliances.Alliance", verbose_name="医共体", on_delete=models.PROTECT, related_name="budget_applications",
    )
    year = models.PositiveSmallIntegerField("申请年度")
    status = models.CharField(
        "状态", max_length=10, choices=ApplicationStatus.choices, default=ApplicationStatus.DRAFT, editable=False,
    )
    unified_administration = models.BooleanField("行政统一", default=False)
    unified_staff = models.BooleanField("人员统一", default=False)
    unified_business = models.BooleanField("业务统一", default=False)
    unified_drugs = models.BooleanField("药械统一", default=False)
    unified_finance = models.BooleanField("财务统一", default=False)
    unified_performance = models.BooleanField("绩效统一", default=False)
    unified_information = models.BooleanField("信息统一", default=False)
    unified_notes = models.TextField("七统一情况说明", blank=True)
    contact_name = models.CharField("联系人", max_length=50)
    contact_phone = models.CharField("联系电话", max_length=30)
    statement = models.TextField("申请内容", default=DEFAULT_STATEMENT)
    # Frozen at submission so the printed document shows the members the reviewers saw.
    member_snapshot = models.JSONField("成员机构（提交时）", default=list, blank=True, editable=False)
    submitted_at = models.DateTimeField("提交时间", null=True, blank=True, editable=False)
    approved_at = models.DateTimeField("批准时间", null=True, blank=True, editable=False)
    effective_from = models.DateField("总额付费起始日", null=True, blank=True, editable=False)
    withdrawn_at = models.DateTimeField("退出时间", null=True, blank=True, editable=False)
    withdrawal_reason = models.TextField("退出原因", blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="填报人", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+", editable=False,
    )
    created_at = models.DateTimeField("填报时间", auto_now_add=True)
    history = HistoricalRecords()

    scope_region = "alliance__county"

    class Meta:
        verbose_name = "总额付费申请"
        verbose_name_plural = verbose_name
        ordering = ["-created_at"]
        constraints = [
            # An alliance has at most one application under way or in force at a time.
            models.UniqueConstraint(
                fields=["alliance"], condition=Q(status__in=OPEN_STATUSES), name="one_open_budget_application",
            ),
        ]

    def __str__(self):
        return f"{self.alliance.name} {self.year}年总额付费申请（{self.get_status_display()}）"

    def unified_items(self):
        return [(label, getattr(self, name)) for name, label in SEVEN_UNIFIED]

    @property
    def all_unified(self):
        return all(getattr(self, name) for name, _ in SEVEN_UNIFIED)


class StepAction(models.TextChoices):
    SUBMIT = "submit", "总医院提交申请"
    HEALTH_CONFIRM = "health_confirm", "卫健委确认七统一"
    COUNTY_CONFIRM = "county_confirm", "县区医保局确认"
    APPROVE = "approve", "市医保局审批通过"
    RETURN = "return", "退回"
    WITHDRAW = "withdraw", "退出总额付费"


class BudgetWorkflowStep(AllianceScoped, models.Model):
    """One step of an application: who, when, from which status to which, and why."""

    application = models.ForeignKey(
        BudgetApplication, verbose_name="申请", on_delete=models.CASCADE, related_name="steps",
    )
    action = models.CharField("操作", max_length=16, choices=StepAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="操作人", on_delete=models.PROTECT, related_name="+",
    )
    acted_at = models.DateTimeField("操作时间")
    from_status = models.CharField("原状态", max_length=10, choices=ApplicationStatus.choices)
    to_status = models.CharField("新状态", max_length=10, choices=ApplicationStatus.choices)
    comment = models.TextField("意见", blank=True)

    scope_region = "application__alliance__county"
    scope_alliance = "application__alliance"

    class Meta:
        verbose_name = "总额付费审批记录"
        verbose_name_plural = verbose_name
        ordering = ["application", "acted_at", "pk"]

    def __str__(self):
        # In Asia/Shanghai like the rows beside it, not the stored UTC.
        return f"{timezone.localtime(self.acted_at):%Y-%m-%d %H:%M} {self.get_action_display()}"


# --- Budget composition and allocation ------------------------------------------------------


class CityLevelItem(models.TextChoices):
    """KF §4(一)5: budgeted separately by the city, outside the alliance's total."""

    SERIOUS_ILLNESS = "大病保险", "大病保险"
    NEGOTIATED_DRUGS = "谈判药品", "单独支付国家谈判药品"
    CHRONIC_SPECIAL = "门诊慢特病", "门诊慢特病"
    PER_DISEASE = "按病种付费", "按病种付费"
    MATERNITY = "生育", "职工生育保险/居民孕产妇住院分娩"
    MAX_LIMIT = "一次性进入最高支付限额", "职工一次性进入最高支付限额"
    LONG_TERM_CARE = "长期护理保险", "长期护理保险筹资"
    OUT_OF_COUNTY_IN_CITY = "县域外市域内就医", "县域外市域内就医"
    OTHER = "其他", "其他"


class AllianceBudgetPlan(AllianceScoped, models.Model):
    """The composition of one alliance's total for one year and insurance type (KF §4(一)).

    annual_budget is the year's total before the risk reserve; the fund holds back the reserve,
    so the settled budget B (settlement Budget row) = annual_budget − risk_reserve. Out-of-city care
    of the alliance's insured is paid from B by the lead hospital, so what it may allocate to members
    is B − out_of_city_estimate. City-level items are listed for the record and are not in B.
    """

    alliance = models.ForeignKey(
        "alliances.Alliance", verbose_name="医共体", on_delete=models.PROTECT, related_name="budget_plans",
    )
    year = models.PositiveSmallIntegerField("年度")
    insurance_type = models.CharField("险种", max_length=2, choices=[("职工", "职工"), ("居民", "居民")])
    annual_budget = money("年度预算总额")
    risk_reserve = money("风险储备金", help_text="不超过年度预算总额的10%")
    out_of_city_history_1 = money("上年市域外就医医保支出", null=True, blank=True, default=None)
    out_of_city_history_2 = money("前年市域外就医医保支出", null=True, blank=True, default=None)
    out_of_city_history_3 = money("大前年市域外就医医保支出", null=True, blank=True, default=None)
    out_of_city_estimate = money("市域外就医预算", help_text="按近1–3年实际支出平均核定")
    history = HistoricalRecords()

    scope_region = "alliance__county"

    class Meta:
        verbose_name = "医共体总额预算构成"
        verbose_name_plural = verbose_name
        ordering = ["-year", "alliance__code", "insurance_type"]
        constraints = [
            models.UniqueConstraint(fields=["alliance", "year", "insurance_type"], name="alliance_budget_plan_key"),
        ]

    def __str__(self):
        return f"{self.alliance.name} {self.year} {self.insurance_type}"

    @property
    def budget_amount(self):
        """B for this insurance type: what the fund prepays and settles."""
        return self.annual_budget - self.risk_reserve

    @property
    def allocatable(self):
        return self.budget_amount - self.out_of_city_estimate

    def clean(self):
        errors = {}
        if self.annual_budget is not None and self.risk_reserve is not None:
            cap = self.annual_budget * RISK_RESERVE_CAP
            if self.risk_reserve > cap:
                errors["risk_reserve"] = (
                    f"{self.risk_reserve}元超过年度预算总额的10%（上限{cap.quantize(Decimal('0.01'))}元）"
                )
        if (
            self.annual_budget is not None and self.risk_reserve is not None
            and self.out_of_city_estimate is not None
            and self.out_of_city_estimate > self.annual_budget - self.risk_reserve
        ):
            errors["out_of_city_estimate"] = "市域外就医预算不能超过扣除风险储备金后的预算总额"
        if errors:
            raise ValidationError(errors)


class CityLevelBudgetItem(AllianceScoped, models.Model):
    plan = models.ForeignKey(AllianceBudgetPlan, verbose_name="预算构成", on_delete=models.CASCADE, related_name="city_items")
    item = models.CharField("单列项目", max_length=12, choices=CityLevelItem.choices)
    note = models.CharField("说明", max_length=100, blank=True)
    amount = money("金额")
    history = HistoricalRecords()

    scope_region = "plan__alliance__county"
    scope_alliance = "plan__alliance"

    class Meta:
        verbose_name = "市级单列预算项目"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["plan", "item", "note"], name="city_level_item_key")]

    def __str__(self):
        return f"{self.get_item_display()}: {self.amount}"


class MemberAllocation(AllianceScoped, models.Model):
    """The lead hospital's allocation of an insurance type's budget to one member (KF §4(一))."""

    plan = models.ForeignKey(AllianceBudgetPlan, verbose_name="预算构成", on_delete=models.CASCADE, related_name="allocations")
    institution = models.ForeignKey(
        "alliances.Institution", verbose_name="成员机构", on_delete=models.PROTECT, related_name="budget_allocations",
    )
    amount = money("分配额度")
    history = HistoricalRecords()

    scope_region = "plan__alliance__county"
    scope_alliance = "plan__alliance"

    class Meta:
        verbose_name = "成员机构预算分配"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["plan", "institution"], name="member_allocation_key")]

    def __str__(self):
        return f"{self.plan} → {self.institution.name}: {self.amount}"


# --- KPI targets and assessment weights ----------------------------------------------------


class Kpi(models.TextChoices):
    """Indicators of KF §3 and SPEC §6.4; computed by alliances.kpis."""

    COUNTY_VISIT_RATE = "county_visit_rate", "县域内就诊率（%）"
    GRASSROOTS_VISIT_RATE = "grassroots_visit_rate", "基层就诊率（%）"
    TOTAL_COST_GROWTH = "total_cost_growth", "医疗总费用增长率（%）"
    PERSONAL_BURDEN = "personal_burden", "个人负担比例（%）"
    SIGNING_RATE = "signing_rate", "家庭医生签约率（%）"
    REFERRALS = "referrals", "转诊人次"
    OUTPATIENT_COST_GROWTH = "outpatient_cost_growth", "门诊次均费用增长率（%）"
    DISEASE_EXIT_RATE = "disease_exit_rate", "病种退出率（%）"
    BED_DAY_AVERAGE_STAY = "bed_day_average_stay", "床日付费平均住院日（天）"
    BED_DAY_DAILY_COST = "bed_day_daily_cost", "床日付费日均费用（元）"


class Comparison(models.TextChoices):
    AT_LEAST = "gte", "不低于（≥）"
    AT_MOST = "lte", "不高于（≤）"
    ABOUT = "approx", "左右（≈，允许偏差）"


class KpiTarget(ScopedModel, models.Model):
    """An indicator's target; a row with a year overrides the default row (year blank)."""

    kpi = models.CharField("指标", max_length=30, choices=Kpi.choices)
    year = models.PositiveSmallIntegerField("年度", null=True, blank=True, help_text="空为各年度默认目标")
    comparison = models.CharField("比较方式", max_length=6, choices=Comparison.choices)
    target = models.DecimalField("目标值", max_digits=12, decimal_places=4)
    tolerance = models.DecimalField(
        "允许偏差", max_digits=12, decimal_places=4, default=ZERO, validators=[MinValueValidator(ZERO)],
        help_text="仅“左右”使用：偏差在此范围内视为达标",
    )
    source = models.CharField("依据", max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "考核指标目标"
        verbose_name_plural = verbose_name
        ordering = ["kpi", "year"]
        constraints = [
            models.UniqueConstraint(fields=["kpi", "year"], name="kpi_target_key", nulls_distinct=False),
        ]

    def __str__(self):
        year = f"{self.year}年" if self.year else "默认"
        return f"{self.get_kpi_display()} {year} {self.get_comparison_display()} {self.target}"

    @classmethod
    def for_year(cls, year):
        """kpi → target in force for the year (the year's row, else the default row)."""
        chosen = {}
        for row in cls.objects.filter(Q(year=year) | Q(year__isnull=True)).order_by("year"):
            if row.kpi not in chosen or row.year is not None:
                chosen[row.kpi] = row
        return chosen


class AssessmentScheme(ScopedModel, models.Model):
    """The bureau's weights for one year's assessment (score = Σ weight × attainment)."""

    year = models.PositiveSmallIntegerField("年度", unique=True)
    name = models.CharField("名称", max_length=100, default="医共体医保管理考核")
    note = models.TextField("说明", blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "考核方案"
        verbose_name_plural = verbose_name
        ordering = ["-year"]

    def __str__(self):
        return f"{self.year}年{self.name}"


class AssessmentWeight(ScopedModel, models.Model):
    scheme = models.ForeignKey(AssessmentScheme, verbose_name="考核方案", on_delete=models.CASCADE, related_name="weights")
    kpi = models.CharField("指标", max_length=30, choices=Kpi.choices)
    weight = models.DecimalField(
        "权重（分）", max_digits=5, decimal_places=2,
        validators=[MinValueValidator(ZERO), MaxValueValidator(Decimal("100"))],
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "考核指标权重"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["scheme", "kpi"], name="assessment_weight_key")]

    def __str__(self):
        return f"{self.get_kpi_display()}: {self.weight}"
