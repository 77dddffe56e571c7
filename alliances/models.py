from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from .scope import Role, ScopedModel
from .validators import validate_division_code, validate_institution_code


class Region(ScopedModel, models.Model):
    """统筹区/县区. A region without a parent is the city."""

    code = models.CharField("区划代码", max_length=6, unique=True, validators=[validate_division_code])
    name = models.CharField("名称", max_length=50)
    parent = models.ForeignKey(
        "self", verbose_name="上级区划", null=True, blank=True, on_delete=models.PROTECT,
        related_name="children",
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "统筹区/县区"
        verbose_name_plural = verbose_name
        ordering = ["code"]

    def __str__(self):
        return f"{self.name}（{self.code}）"

    def clean(self):
        if self.parent_id and self.parent_id == self.pk:
            raise ValidationError({"parent": "上级区划不能是本区划"})


class InstitutionLevel(models.TextChoices):
    TERTIARY = "三级", "三级"
    SECONDARY = "二级", "二级"
    PRIMARY = "一级", "一级"
    GRASSROOTS = "基层", "基层"

    @classmethod
    def band(cls, level):
        """The DRG pool band of SPEC §6.5."""
        return "二级及以上" if level in (cls.TERTIARY, cls.SECONDARY) else "一级及基层"


class GrassrootsKind(models.TextChoices):
    TOWNSHIP = "乡镇卫生院", "乡镇卫生院"
    COMMUNITY_CENTER = "社区卫生服务中心", "社区卫生服务中心"
    VILLAGE = "村卫生室", "村卫生室"
    COMMUNITY_STATION = "社区卫生服务站", "社区卫生服务站"


class InstitutionKind(models.TextChoices):
    GENERAL = "综合", "综合"
    TCM = "中医", "中医"
    SPECIALIST = "专科", "专科"


class Institution(ScopedModel, models.Model):
    """定点医疗机构."""

    code = models.CharField(
        "机构编码", max_length=12, unique=True, validators=[validate_institution_code],
        help_text="国家医保机构编码：H + 6位区划代码 + 5位数字",
    )
    name = models.CharField("机构名称", max_length=100)
    county = models.ForeignKey(Region, verbose_name="所属县区", on_delete=models.PROTECT, related_name="institutions")
    level = models.CharField("机构等级", max_length=4, choices=InstitutionLevel.choices)
    grassroots_kind = models.CharField(
        "基层机构类型", max_length=10, choices=GrassrootsKind.choices, blank=True,
    )
    kind = models.CharField("机构类别", max_length=4, choices=InstitutionKind.choices, default=InstitutionKind.GENERAL)
    is_public = models.BooleanField("公立", default=True)
    designated_from = models.DateField("定点起始日期", null=True, blank=True)
    designated_to = models.DateField("定点终止日期", null=True, blank=True)
    history = HistoricalRecords()

    scope_region = "county"
    scope_institution = "pk"

    class Meta:
        verbose_name = "定点医疗机构"
        verbose_name_plural = verbose_name
        ordering = ["code"]

    def __str__(self):
        return f"{self.name}（{self.code}）"

    def clean(self):
        errors = {}
        if self.grassroots_kind and self.level != InstitutionLevel.GRASSROOTS:
            errors["grassroots_kind"] = "只有基层机构才填写基层机构类型"
        if self.designated_from and self.designated_to and self.designated_to < self.designated_from:
            errors["designated_to"] = "定点终止日期不能早于起始日期"
        if errors:
            raise ValidationError(errors)


class AllianceKind(models.TextChoices):
    COUNTY = "县域医共体", "县域医共体"
    CITY = "城市医联体", "城市医联体"


class BudgetStatus(models.TextChoices):
    """Global-budget payment workflow of SPEC §6.4."""

    NONE = "未申请", "未申请"
    APPLIED = "已申请", "已申请（待卫健委确认）"
    HEALTH_CONFIRMED = "卫健已确认", "卫健委已确认七统一（待县区医保局确认）"
    COUNTY_CONFIRMED = "县区已确认", "县区医保局已确认（待市医保局审批）"
    APPROVED = "已批准", "已批准（实行总额付费）"
    REJECTED = "已退回", "已退回"
    WITHDRAWN = "已退出", "已退出"


class Alliance(ScopedModel, models.Model):
    """医共体 / 城市医联体."""

    code = models.CharField("医共体编码", max_length=30, unique=True)
    name = models.CharField("医共体名称", max_length=100)
    county = models.ForeignKey(Region, verbose_name="所属县区", on_delete=models.PROTECT, related_name="alliances")
    kind = models.CharField("类型", max_length=10, choices=AllianceKind.choices, default=AllianceKind.COUNTY)
    lead_hospital = models.ForeignKey(
        Institution, verbose_name="牵头医院（总医院）", on_delete=models.PROTECT, related_name="led_alliances",
    )
    budget_status = models.CharField(
        "总额付费状态", max_length=10, choices=BudgetStatus.choices, default=BudgetStatus.NONE,
    )
    budget_effective_from = models.DateField("总额付费起始月", null=True, blank=True)
    is_default = models.BooleanField(
        "县区默认医共体", default=False,
        help_text="一个县区有多个医共体时必须指定一个：未与任何医共体成员签约的参保居民归属默认医共体（SPEC §6.4）",
    )
    history = HistoricalRecords()

    scope_region = "county"
    scope_institution = "memberships__institution"

    class Meta:
        verbose_name = "医共体"
        verbose_name_plural = verbose_name
        ordering = ["code"]
        constraints = [
            # SPEC §6.4: at most one default alliance per county, whichever door writes it.
            models.UniqueConstraint(
                fields=["county"], condition=Q(is_default=True), name="one_default_alliance_per_county",
            ),
        ]

    def __str__(self):
        return f"{self.name}（{self.code}）"

    @classmethod
    def scope_filter(cls, scope):
        if scope.is_hospital:
            return Q(pk__in=scope.alliance_ids)
        return super().scope_filter(scope)

    def clean(self):
        if not self.county_id:
            return
        others = Alliance.objects.filter(county_id=self.county_id).exclude(pk=self.pk)
        problem = default_alliance_problem(self.is_default, others.values_list("name", "code", "is_default"))
        if problem:
            raise ValidationError({"is_default": problem})


def default_alliance_problem(is_default, others):
    """Chinese reason why an alliance's default flag breaks SPEC §6.4's coverage rule, or None.

    `others`: (name, code, is_default) of the county's other alliances. One alliance alone covers
    its whole county; where there are several, exactly one of them is the default.
    """
    others = list(others)
    flagged = [f"{name}（{code}）" for name, code, flag in others if flag]
    if is_default and flagged:
        return f"该县区已有默认医共体{flagged[0]}，每个县区只能有一个默认医共体"
    if others and not is_default and not flagged:
        names = "、".join(f"{name}（{code}）" for name, code, _ in others)
        return (f"该县区还有医共体{names}，一个县区有多个医共体时必须将其中一个设为县区默认医共体"
                "（未签约居民归属默认医共体）")
    return None


class Membership(ScopedModel, models.Model):
    """An institution's dated membership of an alliance (the lead hospital is listed too)."""

    alliance = models.ForeignKey(Alliance, verbose_name="医共体", on_delete=models.CASCADE, related_name="memberships")
    institution = models.ForeignKey(Institution, verbose_name="成员机构", on_delete=models.PROTECT, related_name="memberships")
    joined_on = models.DateField("加入日期")
    left_on = models.DateField("退出日期", null=True, blank=True)
    history = HistoricalRecords()

    scope_region = "alliance__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "医共体成员"
        verbose_name_plural = verbose_name
        ordering = ["alliance__code", "joined_on"]
        constraints = [
            models.UniqueConstraint(
                fields=["alliance", "institution", "joined_on"], name="membership_business_key",
            ),
            models.CheckConstraint(
                condition=Q(left_on__isnull=True) | Q(left_on__gte=models.F("joined_on")),
                name="membership_dates_in_order",
            ),
        ]
        indexes = [models.Index(fields=["institution", "joined_on"])]

    def __str__(self):
        return f"{self.alliance.name} / {self.institution.name}"

    def overlapping(self):
        """Other memberships of the same institution that share at least one day with this one."""
        others = Membership.objects.filter(institution_id=self.institution_id).exclude(pk=self.pk)
        if self.left_on:
            others = others.filter(joined_on__lte=self.left_on)
        return others.filter(Q(left_on__isnull=True) | Q(left_on__gte=self.joined_on))

    def clean(self):
        if self.left_on and self.joined_on and self.left_on < self.joined_on:
            raise ValidationError({"left_on": "退出日期不能早于加入日期"})
        if self.institution_id and self.joined_on:
            clash = self.overlapping().select_related("alliance").first()
            if clash:
                end = clash.left_on.isoformat() if clash.left_on else "至今"
                raise ValidationError(
                    f"该机构在{clash.joined_on.isoformat()}至{end}已属于{clash.alliance.name}，"
                    "同一机构同一时间只能属于一个医共体"
                )


class UserScope(ScopedModel, models.Model):
    """A staff user's role and the region or institution that bounds what they see."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name="用户", on_delete=models.CASCADE, related_name="portal_scope",
    )
    role = models.CharField("角色", max_length=10, choices=Role.CHOICES)
    region = models.ForeignKey(Region, verbose_name="所属县区", null=True, blank=True, on_delete=models.PROTECT)
    institution = models.ForeignKey(Institution, verbose_name="所属机构", null=True, blank=True, on_delete=models.PROTECT)
    history = HistoricalRecords()

    scope_region = "region"
    scope_institution = "institution"

    class Meta:
        verbose_name = "用户角色与范围"
        verbose_name_plural = verbose_name

    def __str__(self):
        return f"{self.user} · {Role.LABELS.get(self.role, self.role)}"

    @classmethod
    def scope_filter(cls, scope):
        # County staff see the accounts of their county, hospital staff their own institution's.
        if scope.is_regional:
            return Q(region_id__in=scope.region_ids) | Q(institution__county_id__in=scope.region_ids)
        return super().scope_filter(scope)

    def clean(self):
        if self.role in Role.REGIONAL and not self.region_id:
            raise ValidationError({"region": "县区医保局和卫健委用户必须指定所属县区"})
        if self.role == Role.HOSPITAL and not self.institution_id:
            raise ValidationError({"institution": "医疗机构用户必须指定所属机构"})


class ExportRecord(models.Model):
    """One export or download of a file with personal or settlement data: who, when, what, which filter,
    how many rows (issue 18, finding 8). Written by `alliances.export_trail.record_export` only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="用户", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="空为命令行或后台任务",
    )
    created_at = models.DateTimeField("时间", auto_now_add=True, db_index=True)
    channel = models.CharField("途径", max_length=20)
    resource = models.CharField("导出内容", max_length=50)
    title = models.CharField("名称", max_length=100)
    filters = models.TextField("筛选条件", blank=True)
    rows = models.PositiveIntegerField("行数")
    file_name = models.CharField("文件名", max_length=200, blank=True)

    class Meta:
        verbose_name = "导出记录"
        verbose_name_plural = verbose_name
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self):
        return f"{self.title}（{self.rows}行）"


# The global-budget workflow models live in their own module; importing them here registers them.
from .budget_models import (  # noqa: E402,F401
    AllianceBudgetPlan, ApplicationStatus, AssessmentScheme, AssessmentWeight, BudgetApplication,
    BudgetWorkflowStep, CityLevelBudgetItem, Comparison, Kpi, KpiTarget, MemberAllocation, StepAction,
)
