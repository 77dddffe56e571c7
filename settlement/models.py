"""Transaction data, standards, budgets and payments (SPEC §3–§4)."""
from decimal import Decimal

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from alliances.models import Institution, InstitutionLevel
from alliances.scope import OUT_OF_WRITE_SCOPE, ScopedModel
from contracts.models import Disease, InsuranceType, InsuredPerson

from .approval import Guarded

ZERO = Decimal("0")


def money(verbose_name, **kwargs):
    kwargs.setdefault("validators", [MinValueValidator(ZERO)])
    return models.DecimalField(verbose_name, max_digits=16, decimal_places=2, **kwargs)


class Scheme(models.TextChoices):
    """Payment schemes; the value is the name used on the command line and in spreadsheets."""

    CAPITATION = "capitation", "门诊按人头付费"
    SPECIAL_OUTPATIENT = "special_outpatient", "二类门特按病种按人头付费"
    FAMILY_DOCTOR = "family_doctor", "家庭医生签约服务费"
    ALLIANCE_BUDGET = "alliance_budget", "医共体总额付费"
    DRG = "drg", "DRG点数法"
    BED_DAY = "bed_day", "按床日付费"
    DISEASE = "disease", "按病种付费"
    # Not a payment scheme: the benefit engine's modifiers (SPEC §6.8) are a policy like the schemes'.
    BENEFITS = "benefits", "待遇政策（分级诊疗）"
    AUDIT = "audit", "智能审核规则"


class VisitType(models.TextChoices):
    GENERAL = "普通门诊", "普通门诊"
    CHRONIC = "慢病门诊", "慢病门诊"
    SPECIAL = "特病门诊", "特病门诊"
    SPECIAL_CLASS2 = "二类门特", "二类门特"


class DischargeMode(models.TextChoices):
    """离院方式, the settlement list's codes (SPEC §4)."""

    ORDERED = "1", "医嘱离院"
    TRANSFERRED = "2", "医嘱转院"
    TO_PRIMARY = "3", "医嘱转社区/乡镇卫生院"
    AGAINST_ADVICE = "4", "非医嘱离院"
    DIED = "5", "死亡"
    OTHER = "9", "其他"


class BedDayCategory(models.TextChoices):
    PSYCHIATRIC = "精神", "精神"
    HOSPICE = "安宁疗护", "安宁疗护"
    REHABILITATION = "康复", "康复"


class AgeBand(models.TextChoices):
    UP_TO_60 = "60周岁及以下", "60周岁及以下"
    OVER_60 = "60周岁以上", "60周岁以上"

    @classmethod
    def for_age(cls, age):
        return cls.UP_TO_60 if age <= 60 else cls.OVER_60


class ApprovalStatus(models.TextChoices):
    DRAFT = "草稿", "草稿"
    APPROVED = "已审批", "已审批"


class UnitScoped(ScopedModel):
    """Rows keyed by a 单位编码 (alliance, institution or DRG pool)."""

    @classmethod
    def scope_filter(cls, scope):
        return scope.unit_code_q("unit_code")

    def write_scope_refusal(self, scope):
        return None if scope.unit_code_allowed(self.unit_code or "") else OUT_OF_WRITE_SCOPE


# --- Transaction data -------------------------------------------------------------------


class OutpatientClaim(ScopedModel, models.Model):
    """门诊结算记录, unique per institution and settlement serial."""

    # The single-column FK indexes are left out: the business key (institution, serial) and the
    # (person, visit_date) index serve those lookups, and every extra index slows the monthly uploads.
    institution = models.ForeignKey(
        Institution, verbose_name="机构", on_delete=models.PROTECT, related_name="outpatient_claims", db_index=False,
    )
    serial = models.CharField("结算流水号", max_length=40)
    person = models.ForeignKey(
        InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="outpatient_claims", db_index=False,
    )
    visit_date = models.DateField("就诊日期")
    insurance_type = models.CharField("险种", max_length=2, choices=InsuranceType.choices)
    visit_type = models.CharField("门诊类型", max_length=4, choices=VisitType.choices)
    # Most claims (普通门诊) have no disease: the index on it is partial (see Meta), so uploading them
    # does not maintain it, while deleting a disease still finds its claims (PROTECT) by index.
    disease = models.ForeignKey(
        Disease, verbose_name="病种", null=True, blank=True, on_delete=models.PROTECT, related_name="outpatient_claims",
        db_index=False,
    )
    total_cost = money("总费用")
    fund_paid = money("统筹支付")
    personal_paid = money("个人负担")
    referral = models.BooleanField("转诊", default=False)
    # 政策范围内费用 (SPEC §6.8); empty = 总费用.
    in_scope_cost = money("政策范围内费用", null=True, blank=True, help_text="空为总费用")
    # History is read per row (by id); indexes on its copied FK columns only cost upload time.
    history = HistoricalRecords(no_db_index=["institution", "person", "disease"])

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "门诊结算记录"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["institution", "serial"], name="outpatient_claim_business_key")]
        indexes = [
            models.Index(fields=["person", "visit_date"]),
            models.Index(fields=["visit_date", "visit_type"]),
            models.Index(fields=["disease"], name="outpatient_claim_disease", condition=Q(disease__isnull=False)),
            # An institution's claims newest first, with the date that places them in a year and their
            # 门诊类型, read from the index alone: the 核对 page's 全部 for a few institutions
            # (benefits.admin.AllFiguresPaginator); a rare type without it read the heap far down.
            models.Index(fields=["institution", "id"], include=["visit_date", "visit_type"],
                         name="claim_institution_newest"),
        ]

    def __str__(self):
        return f"{self.serial}"

    def clean(self):
        if None not in (self.total_cost, self.fund_paid, self.personal_paid):
            if abs(self.fund_paid + self.personal_paid - self.total_cost) > Decimal("0.01"):
                raise ValidationError("统筹支付与个人负担之和应等于总费用（允许误差0.01元）")


class InpatientCase(ScopedModel, models.Model):
    """住院病例, unique per institution and case serial. A case belongs to its discharge year."""

    institution = models.ForeignKey(
        Institution, verbose_name="机构", on_delete=models.PROTECT, related_name="inpatient_cases", db_index=False,
    )
    serial = models.CharField("病案号", max_length=40)
    person = models.ForeignKey(
        InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="inpatient_cases", db_index=False,
    )
    admission_date = models.DateField("入院日期")
    discharge_date = models.DateField("出院日期")
    principal_diagnosis = models.CharField("主诊断", max_length=30)
    main_operation = models.CharField("主手术", max_length=30, blank=True)
    drg_code = models.CharField("DRG编码", max_length=20, blank=True)
    total_cost = money("总费用")
    fund_paid = money("统筹支付")
    personal_paid = money("个人负担")
    incomplete_stay = models.BooleanField("住院过程不完整", default=False)
    transferred = models.BooleanField("转院", default=False)
    new_technology = models.BooleanField("新技术", default=False)
    bed_day_category = models.CharField("床日类别", max_length=4, choices=BedDayCategory.choices, blank=True)
    in_scope_cost = money("政策范围内费用", null=True, blank=True, help_text="空为总费用")
    # NULL, not "": an older file without the column keeps what is stored (SPEC §4). Mode 2 (转院)
    # means transferred, 5 died; `transferred` itself stays as uploaded or set by staff.
    discharge_mode = models.CharField(  # noqa: DJ001
        "离院方式", max_length=1, choices=DischargeMode.choices, null=True, blank=True,
    )
    history = HistoricalRecords(no_db_index=["institution", "person"])

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "住院病例"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(fields=["institution", "serial"], name="inpatient_case_business_key"),
            models.CheckConstraint(
                condition=Q(discharge_date__gte=models.F("admission_date")), name="case_dates_in_order",
            ),
        ]
        indexes = [
            models.Index(fields=["discharge_date"]),
            models.Index(fields=["person", "discharge_date"]),
        ]

    def __str__(self):
        return self.serial

    @property
    def was_transferred(self):
        return self.transferred or self.discharge_mode == DischargeMode.TRANSFERRED

    @property
    def died(self):
        return self.discharge_mode == DischargeMode.DIED

    @property
    def length_of_stay(self):
        """Discharge − admission in days, at least 1 (SPEC §3)."""
        return max(1, (self.discharge_date - self.admission_date).days)

    def clean(self):
        if self.admission_date and self.discharge_date and self.discharge_date < self.admission_date:
            raise ValidationError({"discharge_date": "出院日期不能早于入院日期"})
        if None not in (self.total_cost, self.fund_paid, self.personal_paid):
            if abs(self.fund_paid + self.personal_paid - self.total_cost) > Decimal("0.01"):
                raise ValidationError("统筹支付与个人负担之和应等于总费用（允许误差0.01元）")


class FamilyDoctorService(ScopedModel, models.Model):
    """家庭医生服务记录 (fd_services): makes a signed person a served person (SPEC §6.3)."""

    person = models.ForeignKey(InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="fd_services")
    institution = models.ForeignKey(Institution, verbose_name="机构", on_delete=models.PROTECT, related_name="fd_services")
    service_date = models.DateField("服务日期")
    item = models.CharField("服务项目", max_length=100)
    history = HistoricalRecords()

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "家庭医生服务记录"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(fields=["person", "institution", "service_date", "item"], name="fd_service_business_key"),
        ]

    def __str__(self):
        return f"{self.service_date} {self.item}"


class SpecialDesignation(ScopedModel, models.Model):
    """二类门特 choice of treating institution for a year (SPEC §6.2)."""

    year = models.PositiveSmallIntegerField("年度")
    person = models.ForeignKey(InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="special_designations")
    disease = models.ForeignKey(Disease, verbose_name="病种", on_delete=models.PROTECT, related_name="special_designations")
    institution = models.ForeignKey(
        Institution, verbose_name="治疗机构", on_delete=models.PROTECT, related_name="special_designations",
    )
    signing_institution = models.ForeignKey(
        Institution, verbose_name="签约机构", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    history = HistoricalRecords()

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "二类门特定点"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["year", "person", "disease"], name="designation_business_key")]

    def __str__(self):
        return f"{self.year} {self.person.name} · {self.disease.name}"


# --- Standards --------------------------------------------------------------------------


class Approvable(Guarded, models.Model):
    """A standard is used only once approved (SPEC §6.1), and is immutable from then on (SPEC §7)."""

    status = models.CharField("状态", max_length=3, choices=ApprovalStatus.choices, default=ApprovalStatus.DRAFT)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="审批人", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    approved_at = models.DateTimeField("审批时间", null=True, blank=True)
    version = models.PositiveIntegerField("版本", default=1, editable=False)

    class Meta:
        abstract = True

    def locked_reason(self):
        if self.status == ApprovalStatus.APPROVED:
            return f"{self._meta.verbose_name}“{self}”已审批，不能再修改、删除或导入覆盖"
        return None

    def is_draft_proposal(self):
        # County staff propose city-wide standards as drafts (测算); the city bureau approves them.
        return self.status == ApprovalStatus.DRAFT


class CapitationStandard(ScopedModel, Approvable):
    """人头标准 (元/人·年) by year, insurance type, age band and disease (blank = 普通门诊)."""

    year = models.PositiveSmallIntegerField("年度")
    insurance_type = models.CharField("险种", max_length=2, choices=InsuranceType.choices)
    age_band = models.CharField("年龄段", max_length=8, choices=AgeBand.choices)
    disease = models.ForeignKey(
        Disease, verbose_name="病种", null=True, blank=True, on_delete=models.PROTECT, related_name="capitation_standards",
        help_text="空为普通门诊",
    )
    amount = money("人头标准（元/人·年）")
    valid_years = models.PositiveSmallIntegerField("有效年数", default=2, help_text="原则上每两年调整一次")
    history = HistoricalRecords()

    class Meta:
        verbose_name = "门诊人头标准"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(
                fields=["year", "insurance_type", "age_band", "disease"], name="capitation_standard_key",
                nulls_distinct=False,
            ),
        ]

    def __str__(self):
        disease = self.disease.name if self.disease_id else "普通门诊"
        return f"{self.year} {self.insurance_type} {self.age_band} {disease}: {self.amount}"


class SpecialStandard(ScopedModel, Approvable):
    year = models.PositiveSmallIntegerField("年度")
    disease = models.ForeignKey(Disease, verbose_name="病种", on_delete=models.PROTECT, related_name="special_standards")
    amount = money("人头标准（元/人·年）")
    history = HistoricalRecords()

    class Meta:
        verbose_name = "二类门特人头标准"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["year", "disease"], name="special_standard_key")]

    def __str__(self):
        return f"{self.year} {self.disease.name}: {self.amount}"


class DrgGroup(ScopedModel, Guarded, models.Model):
    year = models.PositiveSmallIntegerField("年度")
    code = models.CharField("DRG编码", max_length=20)
    name = models.CharField("名称", max_length=200)
    base_points = models.DecimalField("基准点数", max_digits=12, decimal_places=4, validators=[MinValueValidator(ZERO)])
    average_cost = money("病组均次费用")
    bed_day_points = models.DecimalField(
        "床日点数", max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(ZERO)],
    )
    same_price = models.BooleanField("同病同价", default=False)
    tcm_support = models.BooleanField("中医扶持", default=False)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "DRG病组"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["year", "code"], name="drg_group_key")]

    def __str__(self):
        return f"{self.year} {self.code} {self.name}"

    lock_is_own_status = False

    def locked_reason(self):
        # The catalogue a DRG settlement was approved on is the record of that settlement.
        runs = apps.get_model("settlement", "SettlementRun")._base_manager
        if runs.filter(scheme=Scheme.DRG, year=self.year, status__in=["approved", "paid"]).exists():
            return f"{self.year}年度DRG结算已审核，该年度的病组目录不能再修改或删除"
        return None


class DrgCoefficient(ScopedModel, models.Model):
    year = models.PositiveSmallIntegerField("年度")
    institution = models.ForeignKey(Institution, verbose_name="机构", on_delete=models.PROTECT, related_name="drg_coefficients")
    coefficient = models.DecimalField("差异系数", max_digits=8, decimal_places=4, validators=[MinValueValidator(ZERO)])
    history = HistoricalRecords()

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "DRG差异系数"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["year", "institution"], name="drg_coefficient_key")]

    def __str__(self):
        return f"{self.year} {self.institution.code}: {self.coefficient}"


class BedDayQuota(ScopedModel, models.Model):
    year = models.PositiveSmallIntegerField("年度")
    level = models.CharField("机构等级", max_length=4, choices=InstitutionLevel.choices)
    category = models.CharField("床日类别", max_length=4, choices=BedDayCategory.choices)
    amount = money("床日标准（元/日）")
    history = HistoricalRecords()

    class Meta:
        verbose_name = "床日付费标准"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["year", "level", "category"], name="bed_day_quota_key")]

    def __str__(self):
        return f"{self.year} {self.level} {self.category}: {self.amount}"


class DiseaseStandard(ScopedModel, models.Model):
    year = models.PositiveSmallIntegerField("年度")
    disease = models.ForeignKey(Disease, verbose_name="病种", on_delete=models.PROTECT, related_name="payment_standards")
    main_operation = models.CharField("主手术编码", max_length=30, blank=True)
    level = models.CharField("机构等级", max_length=4, choices=InstitutionLevel.choices)
    amount = money("支付标准（元/例）")
    history = HistoricalRecords()

    class Meta:
        verbose_name = "按病种付费标准"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(fields=["year", "disease", "main_operation", "level"], name="disease_standard_key"),
        ]

    def __str__(self):
        return f"{self.year} {self.disease.name} {self.main_operation} {self.level}: {self.amount}"


# --- Budgets, assessments, payments -----------------------------------------------------


class Budget(UnitScoped, models.Model):
    year = models.PositiveSmallIntegerField("年度")
    scheme = models.CharField("方案", max_length=20, choices=Scheme.choices)
    unit_code = models.CharField("单位编码", max_length=40, help_text="医共体编码、机构编码或DRG统筹池编码（区划代码-等级段）")
    insurance_type = models.CharField("险种", max_length=2, choices=InsuranceType.choices, blank=True, help_text="空为职工和居民合计")
    amount = money("预算额度")
    history = HistoricalRecords()

    class Meta:
        verbose_name = "预算额度"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(fields=["year", "scheme", "unit_code", "insurance_type"], name="budget_key"),
        ]

    def __str__(self):
        return f"{self.year} {self.get_scheme_display()} {self.unit_code} {self.insurance_type or '合计'}: {self.amount}"


class Assessment(UnitScoped, models.Model):
    year = models.PositiveSmallIntegerField("年度")
    unit_code = models.CharField("单位编码", max_length=40)
    score = models.DecimalField(
        "考核得分", max_digits=5, decimal_places=2,
        validators=[MinValueValidator(ZERO), MaxValueValidator(Decimal("100"))],
    )
    retention_bonus = models.DecimalField(
        "留用上浮（百分点）", max_digits=5, decimal_places=2, default=ZERO, validators=[MinValueValidator(ZERO)],
    )
    overspend_reduction = models.DecimalField(
        "超支分担下调（百分点）", max_digits=5, decimal_places=2, default=ZERO, validators=[MinValueValidator(ZERO)],
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "考核结果"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["year", "unit_code"], name="assessment_key")]

    def __str__(self):
        return f"{self.year} {self.unit_code}: {self.score}"


class PaymentSource(models.TextChoices):
    IMPORTED = "导入", "导入（系统上线前已拨付）"
    PREPAYMENT = "月度预拨", "月度预拨"
    SETTLEMENT = "年终清算", "年终清算"


class Payment(UnitScoped, models.Model):
    """已拨付: imported history or produced by the system's monthly prepayment runs."""

    year = models.PositiveSmallIntegerField("年度")
    month = models.PositiveSmallIntegerField("月份", validators=[MinValueValidator(1), MaxValueValidator(12)])
    scheme = models.CharField("方案", max_length=20, choices=Scheme.choices)
    unit_code = models.CharField("单位编码", max_length=40)
    amount = money("拨付金额", validators=[])  # a refund is negative
    source = models.CharField("来源", max_length=4, choices=PaymentSource.choices, default=PaymentSource.IMPORTED)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "拨付记录"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(fields=["year", "month", "scheme", "unit_code"], name="payment_key"),
        ]

    def __str__(self):
        return f"{self.year}-{self.month:02d} {self.get_scheme_display()} {self.unit_code}: {self.amount}"


# --- Background jobs --------------------------------------------------------------------


class JobKind(models.TextChoices):
    IMPORT = "import", "数据导入"
    SETTLEMENT = "settlement", "结算计算"
    PREPAYMENT = "prepayment", "月度预拨"
    EXPORT = "export", "数据导出"
    REPORT = "report", "报表"
    BENEFITS = "benefits", "待遇测算"
    SIMULATION = "simulation", "政策模拟"
    AUDIT = "audit", "智能审核"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "排队中"
    RUNNING = "running", "运行中"
    SUCCEEDED = "succeeded", "已完成"
    FAILED = "failed", "失败"
    CANCELLED = "cancelled", "已取消"


class Job(ScopedModel, models.Model):
    """A unit of background work with status, progress, counts, log and result files (NetBox-style).

    Progress is written with short autocommitted updates, so a page polling the job sees it move
    while the work runs.
    """

    kind = models.CharField("类型", max_length=12, choices=JobKind.choices)
    title = models.CharField("标题", max_length=200)
    status = models.CharField("状态", max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress_done = models.PositiveBigIntegerField("已处理", default=0)
    progress_total = models.PositiveBigIntegerField("总数", default=0)
    counts = models.JSONField("计数", default=dict, blank=True)
    params = models.JSONField("参数", default=dict, blank=True)
    message = models.TextField("结果说明", blank=True)
    log = models.TextField("日志", blank=True)
    input_file = models.FileField("上传文件", upload_to="jobs/input/%Y/%m/", blank=True)
    result_file = models.FileField("结果文件", upload_to="jobs/result/%Y/%m/", blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="提交人", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    # The submitter's scope at submission, so that county and hospital staff see their own jobs.
    region = models.ForeignKey("alliances.Region", verbose_name="县区", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    institution = models.ForeignKey(
        Institution, verbose_name="机构", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    task_id = models.CharField("任务ID", max_length=64, blank=True)
    created_at = models.DateTimeField("提交时间", auto_now_add=True)
    started_at = models.DateTimeField("开始时间", null=True, blank=True)
    finished_at = models.DateTimeField("完成时间", null=True, blank=True)
    # The Celery worker (node name) and process executing a task of this job right now, and when
    # that worker last showed it was alive: how the sweep tells a dead worker's job from a slow one
    # (settlement/jobs.py). Empty between a run's unit tasks and for jobs run in-process.
    worker = models.CharField("执行进程", max_length=200, blank=True)
    worker_pid = models.PositiveIntegerField("进程号", null=True, blank=True)
    heartbeat_at = models.DateTimeField("心跳时间", null=True, blank=True)
    # A retried import is a new job; the failed or cancelled one stays as it ended.
    retry_of = models.ForeignKey(
        "self", verbose_name="重新导入自", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries",
    )

    scope_region = "region"
    scope_institution = "institution"

    class Meta:
        verbose_name = "后台任务"
        verbose_name_plural = verbose_name
        ordering = ["-created_at"]
        indexes = [
            # Every worker looks for held jobs gone quiet once per beat; the active ones are few.
            models.Index(fields=["worker", "heartbeat_at"], name="job_active_held",
                         condition=Q(status__in=["queued", "running"])),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}：{self.title}"

    @property
    def percent(self):
        if not self.progress_total:
            return 100 if self.status == JobStatus.SUCCEEDED else 0
        return min(100, round(100 * self.progress_done / self.progress_total))

    @property
    def is_finished(self):
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


from .engine.models import *  # noqa: E402,F401,F403  (policies, runs and results of the settlement engine)
from .benefits.models import *  # noqa: E402,F401,F403  (benefit tables, referrals, relocations, 应付统筹)
from .audit.models import *  # noqa: E402,F401,F403  (audit findings and their review, SPEC §9)
from .analysis.models import *  # noqa: E402,F401,F403  (the DRG 运行分析 page's navigation entry, SPEC §10)
from .kpi_aggregates.models import *  # noqa: E402,F401,F403  (pre-aggregated figures of the KPI dashboard)
