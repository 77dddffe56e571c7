"""Benefit tables, referrals, relocation filings and the expected fund payment per claim (SPEC §6.8).

Imported at the end of settlement/models.py so that Django registers them in the `settlement` app.

A benefit table is the year's set of `BenefitRule` rows; its approval state lives in one
`BenefitTable` row per year (the same guarded approval as the standards, settlement/approval.py).
While the year's table is approved every one of its rows is locked; `revise` opens the next version.
"""
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from alliances.models import Institution, InstitutionLevel
from alliances.scope import OUT_OF_WRITE_SCOPE, ScopedModel
from contracts.models import InsuranceType, InsuredPerson
from settlement.approval import Guarded
from settlement.models import ZERO, ApprovalStatus, Approvable, InpatientCase, OutpatientClaim, VisitType, money

__all__ = [
    "CareType", "BenefitTable", "BenefitRule", "ReferralDirection", "Referral", "Relocation", "BenefitFigure",
    "BenefitComputation", "UnmatchedFigure", "UnmatchedTotal", "Outcome",
]


class CareType(models.TextChoices):
    OUTPATIENT = "门诊", "门诊"
    INPATIENT = "住院", "住院"


class BenefitTable(ScopedModel, Approvable):
    """待遇政策表 of one year, city-wide; its rows are the year's `BenefitRule`s."""

    year = models.PositiveSmallIntegerField("年度", unique=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "待遇政策表"
        verbose_name_plural = verbose_name
        ordering = ["-year"]

    def __str__(self):
        return f"{self.year}年度待遇政策表（第{self.version}版）"


def _percent(verbose_name, **kwargs):
    return models.DecimalField(
        verbose_name, max_digits=5, decimal_places=2,
        validators=[MinValueValidator(ZERO), MaxValueValidator(100)], **kwargs,
    )


class BenefitRule(ScopedModel, Guarded, models.Model):
    """One row of `benefit_rules`: the most specific row wins (disease prefix, then 门诊类型, then general)."""

    year = models.PositiveSmallIntegerField("年度")
    insurance_type = models.CharField("险种", max_length=2, choices=InsuranceType.choices)
    care_type = models.CharField("就医类型", max_length=2, choices=CareType.choices)
    level = models.CharField("机构等级", max_length=4, choices=InstitutionLevel.choices)
    visit_type = models.CharField("门诊类型", max_length=4, choices=VisitType.choices, blank=True, help_text="空为不限")
    disease_prefix = models.CharField("病种编码", max_length=30, blank=True, help_text="病种编码前缀，如A15（肺结核）；空为不限")
    deductible = money("起付标准")
    ratio = _percent("报销比例(%)")
    annual_limit = money("年度限额", null=True, blank=True, help_text="空为不设限额")
    history = HistoricalRecords()

    lock_is_own_status = False

    class Meta:
        verbose_name = "待遇政策规则"
        verbose_name_plural = verbose_name
        ordering = ["year", "insurance_type", "care_type", "level", "visit_type", "disease_prefix"]
        constraints = [
            models.UniqueConstraint(
                fields=["year", "insurance_type", "care_type", "level", "visit_type", "disease_prefix"],
                name="benefit_rule_key",
            ),
        ]

    def __str__(self):
        narrowed = "·".join(filter(None, [self.visit_type, self.disease_prefix])) or "一般"
        return f"{self.year} {self.insurance_type} {self.care_type} {self.level} {narrowed}"

    def locked_reason(self):
        table = BenefitTable._base_manager.filter(year=self.year).first()
        return table.locked_reason() if table is not None else None

    def is_draft_proposal(self):
        # County staff may propose rows of a draft table (测算); the city bureau approves the table.
        return self.locked_reason() is None


class ReferralDirection(models.TextChoices):
    UP = "上转", "上转"
    DOWN = "下转", "下转"
    OUT = "转外", "转外"


class Referral(ScopedModel, models.Model):
    """转诊单 (bureau data; a hospital reaches the referrals it sent or received)."""

    number = models.CharField("转诊单号", max_length=40, unique=True)
    person = models.ForeignKey(InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="referrals")
    from_institution = models.ForeignKey(
        Institution, verbose_name="转出机构", on_delete=models.PROTECT, related_name="referrals_sent",
    )
    to_institution = models.ForeignKey(
        Institution, verbose_name="转入机构", on_delete=models.PROTECT, related_name="referrals_received",
    )
    referred_on = models.DateField("转诊日期")
    direction = models.CharField("转诊方向", max_length=2, choices=ReferralDirection.choices)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "转诊记录"
        verbose_name_plural = verbose_name
        indexes = [models.Index(fields=["person", "referred_on"])]

    def __str__(self):
        return f"{self.number}（{self.direction}）"

    @classmethod
    def scope_filter(cls, scope):
        if scope.sees_all:
            return Q()
        if scope.is_regional:
            # The region's institutions as a list on the rows' own (indexed) columns, not two joins.
            institutions = sorted(scope.region_institution_ids)
            return (Q(from_institution__in=institutions) | Q(to_institution__in=institutions)
                    | Q(person__county__in=scope.region_ids))
        if scope.is_hospital:
            return Q(from_institution__in=scope.institution_ids) | Q(to_institution__in=scope.institution_ids)
        return Q(pk__in=[])

    def write_scope_refusal(self, scope):
        if scope.is_regional and scope.region_ids & {
            self.person.county_id if self.person_id else None,
            self.from_institution.county_id if self.from_institution_id else None,
            self.to_institution.county_id if self.to_institution_id else None,
        }:
            return None
        if scope.is_hospital and {self.from_institution_id, self.to_institution_id} & scope.institution_ids:
            return None
        return OUT_OF_WRITE_SCOPE


class Relocation(ScopedModel, models.Model):
    """异地安置备案 (bureau data): two or more filings dated in one year revoke that year's relocation."""

    person = models.ForeignKey(InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="relocations")
    filed_on = models.DateField("备案日期")
    destination = models.CharField("安置地区划代码", max_length=6)
    ended_on = models.DateField("终止日期", null=True, blank=True)
    history = HistoricalRecords()

    scope_region = "person__county"

    class Meta:
        verbose_name = "异地安置备案"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["person", "filed_on"], name="relocation_key")]

    def __str__(self):
        return f"{self.person_id} {self.filed_on} → {self.destination}"


class Outcome(models.TextChoices):
    DIFFERS = "不一致", "不一致"
    UNRULED = "无适用规则", "无适用规则"
    MATCHES = "一致", "一致（相差不超过0.01元）"


class FigureColumns(models.Model):
    """What a 应付统筹 row carries for BEN01 and the 核对 page; the derivation is re-derived on demand."""

    year = models.PositiveSmallIntegerField("年度")
    care_type = models.CharField("就医类型", max_length=2, choices=CareType.choices)
    serial = models.CharField("单据号", max_length=40)
    institution = models.ForeignKey(Institution, verbose_name="机构", on_delete=models.DO_NOTHING, related_name="+",
                                    db_index=False, db_constraint=False)
    person = models.ForeignKey(InsuredPerson, verbose_name="参保人", on_delete=models.DO_NOTHING, related_name="+",
                               db_index=False, db_constraint=False)
    service_date = models.DateField("就诊/出院日期")
    level = models.CharField("机构等级", max_length=4, choices=InstitutionLevel.choices)
    visit_type = models.CharField("门诊类型", max_length=4, blank=True)
    in_scope = money("政策范围内费用")
    fund_paid = money("统筹支付")
    expected = money("应付统筹", null=True)
    difference = models.DecimalField("差额（统筹支付−应付统筹）", max_digits=16, decimal_places=2, null=True)
    outcome = models.CharField("核对结果", max_length=5, choices=Outcome.choices)
    computed_at = models.DateTimeField("计算时间")

    class Meta:
        abstract = True


class BenefitComputation(models.Model):
    """The last computation of a year's 应付统筹: when, its counts, and the newest claim and case it saw.

    Claims and cases of the year up to those ids whose 应付统筹 matches 统筹支付 (within 0.01 元)
    are stored nowhere: they are `BenefitFigure` rows of the view without a figure of their own.
    """

    year = models.PositiveSmallIntegerField("年度", unique=True)
    computed_at = models.DateTimeField("计算时间")
    claims = models.PositiveIntegerField("门诊笔数", default=0)
    cases = models.PositiveIntegerField("住院例数", default=0)
    differing = models.PositiveIntegerField("不一致笔数", default=0)
    unruled = models.PositiveIntegerField("无适用规则笔数", default=0)
    last_claim_id = models.BigIntegerField("最大门诊记录号", default=0)
    last_case_id = models.BigIntegerField("最大住院病例号", default=0)

    class Meta:
        verbose_name = "应付统筹测算记录"
        verbose_name_plural = verbose_name


class UnmatchedFigure(FigureColumns):
    """A claim or case whose 应付统筹 differs from its 统筹支付 by more than 0.01 元, or has no rule.

    Only these are written by `compute_expected` (a year's few percent, instead of a wide row per
    claim); the id is the view's: 2 × claim id for a claim, 2 × case id + 1 for a case.
    """

    id = models.BigIntegerField(primary_key=True)
    # Reached by id (2 × claim id, 2 × case id + 1): no index of their own to maintain on every write.
    claim = models.ForeignKey(OutpatientClaim, verbose_name="门诊结算记录", null=True, blank=True,
                              on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False)
    case = models.ForeignKey(InpatientCase, verbose_name="住院病例", null=True, blank=True,
                             on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False)

    class Meta:
        verbose_name = "应付统筹不一致记录"
        verbose_name_plural = verbose_name
        indexes = [
            # BEN01 and the 核对 page's default list read only the differing figures.
            models.Index(fields=["year", "difference"], name="benefit_unmatched_differs",
                         condition=Q(difference__gt="0.01") | Q(difference__lt="-0.01")),
            # The 核对 page over every year, largest difference first (its order: difference, then id).
            models.Index(fields=["difference", "id"], name="benefit_unmatched_by_diff",
                         condition=Q(difference__gt="0.01") | Q(difference__lt="-0.01")),
        ]


class UnmatchedTotal(ScopedModel, models.Model):
    """Σ of a year's `UnmatchedFigure` rows per institution, 就医类型, 等级, 门诊类型 and 核对结果.

    Written by `compute_expected` beside the rows it sums (a few thousand rows a year instead of a
    grouped scan of ~136 k on every 核对 page): the page's 按机构汇总 under its filters.
    """

    year = models.PositiveSmallIntegerField("年度")
    institution = models.ForeignKey(Institution, verbose_name="机构", on_delete=models.DO_NOTHING, related_name="+",
                                    db_constraint=False)
    care_type = models.CharField("就医类型", max_length=2, choices=CareType.choices)
    level = models.CharField("机构等级", max_length=4, choices=InstitutionLevel.choices)
    visit_type = models.CharField("门诊类型", max_length=4, blank=True)
    outcome = models.CharField("核对结果", max_length=5, choices=Outcome.choices)
    rows = models.PositiveIntegerField("笔数")
    fund_paid = money("统筹支付")
    expected = money("应付统筹", null=True)
    difference = models.DecimalField("差额（统筹支付−应付统筹）", max_digits=16, decimal_places=2, null=True)

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "应付统筹不一致汇总"
        verbose_name_plural = verbose_name
        indexes = [models.Index(fields=["year", "institution"], name="benefit_unmatched_total_key")]


class BenefitFigure(ScopedModel, FigureColumns):
    """应付统筹 of one outpatient claim or inpatient case of a computed year (a database view).

    The view is the stored `UnmatchedFigure` rows and, for every other claim and case of a computed
    year (up to the newest it saw), a row 一致 without a figure of its own: the 核对 page lists both
    under 全部, BEN01 reads the differing ones (`selectors.differing`). The derivation of any claim
    or case is re-derived on its page (`selectors.derivation`), one person-year by index.
    """

    id = models.BigIntegerField(primary_key=True)
    claim = models.ForeignKey(OutpatientClaim, verbose_name="门诊结算记录", null=True, blank=True,
                              on_delete=models.DO_NOTHING, related_name="benefit_figures", db_constraint=False)
    case = models.ForeignKey(InpatientCase, verbose_name="住院病例", null=True, blank=True,
                             on_delete=models.DO_NOTHING, related_name="benefit_figures", db_constraint=False)
    # A constant in each branch of the view (TRUE for the stored rows): a query naming it is planned
    # over that branch alone (the 核对 page's 全部 reads the branches apart and merges them).
    stored = models.BooleanField("单独保存的测算", default=False, editable=False)

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        managed = False
        db_table = "settlement_benefitfigure"
        verbose_name = "应付统筹测算"
        verbose_name_plural = verbose_name

    def __str__(self):
        return f"{self.care_type} {self.serial}"

    def locked_reason(self):
        return "应付统筹由测算生成，不能手工修改；如需更新请重新测算"
