"""Audit findings (疑点) and the steps of their review (SPEC §9).

Imported at the end of settlement/models.py so that Django registers them in the `settlement` app.
A finding's key is (year, rule, subject): a re-run updates the same row and keeps its review state.
"""
from django.conf import settings
from django.db import models

from alliances.models import Institution, Region
from alliances.scope import ScopedModel
from contracts.models import Contract, InsuredPerson
from settlement.engine.models import RunUnit
from settlement.models import InpatientCase, OutpatientClaim, money

__all__ = ["Severity", "FindingStatus", "Finding", "FindingStep", "RecoveryItem"]


class Severity(models.TextChoices):
    VIOLATION = "违规", "违规"
    SUSPECT = "可疑", "可疑"
    NOTICE = "提示", "提示"


class FindingStatus(models.TextChoices):
    OPEN = "待核查", "待核查"
    APPEALED = "申诉", "申诉"
    CONFIRMED = "已确认违规", "已确认违规"
    DISMISSED = "已排除", "已排除"
    EXPIRED = "已失效", "已失效"


DECIDED = (FindingStatus.CONFIRMED, FindingStatus.DISMISSED)


class Finding(ScopedModel, models.Model):
    year = models.PositiveSmallIntegerField("年度")
    rule = models.CharField("规则编码", max_length=10)
    rule_name = models.CharField("规则名称", max_length=40)
    subject = models.CharField("疑点对象", max_length=80, help_text="同一年度同一规则内唯一，重复审核时据此识别同一疑点")
    severity = models.CharField("严重程度", max_length=2, choices=Severity.choices)
    # The county the finding belongs to: its institution's, or the person's county of insurance for a
    # person-level signal across institutions (FRQ02), so bureaus see it even without an institution.
    region = models.ForeignKey(Region, verbose_name="县区", on_delete=models.PROTECT, related_name="+")
    # Each finding is on one kind of thing: the references a rule leaves empty are kept out of their
    # indexes (see Meta), so that writing a rule's ten thousand findings updates only the indexes it uses.
    institution = models.ForeignKey(
        Institution, verbose_name="机构", null=True, blank=True, on_delete=models.PROTECT, related_name="findings",
        db_index=False,
    )
    person = models.ForeignKey(
        InsuredPerson, verbose_name="参保人", null=True, blank=True, on_delete=models.PROTECT, related_name="findings",
        db_index=False,
    )
    claim = models.ForeignKey(
        OutpatientClaim, verbose_name="门诊结算记录", null=True, blank=True, on_delete=models.PROTECT, related_name="findings",
        db_index=False,
    )
    case = models.ForeignKey(
        InpatientCase, verbose_name="住院病例", null=True, blank=True, on_delete=models.PROTECT, related_name="findings",
        db_index=False,
    )
    contract = models.ForeignKey(
        Contract, verbose_name="家庭医生签约", null=True, blank=True, on_delete=models.PROTECT, related_name="findings",
        db_index=False,
    )
    amount = models.DecimalField("涉及金额", max_digits=16, decimal_places=2)
    evidence = models.TextField("依据")
    # The ids behind the evidence (other claims or cases, figures), for the finding's page.
    evidence_data = models.JSONField("依据数据", default=dict, blank=True)
    status = models.CharField("状态", max_length=5, choices=FindingStatus.choices, default=FindingStatus.OPEN)
    found_at = models.DateTimeField("首次发现", auto_now_add=True)
    seen_at = models.DateTimeField("最近一次审核发现")

    scope_region = "region"
    scope_institution = "institution"

    # Stored with fillfactor 50 (migration 0025): a re-run's update of a finding stays on its page and
    # adds no index entries, as long as it changes no indexed column (the upsert in services.py).
    class Meta:
        verbose_name = "审核疑点"
        verbose_name_plural = verbose_name
        ordering = ["-year", "rule", "subject"]
        constraints = [models.UniqueConstraint(fields=["year", "rule", "subject"], name="finding_key")]
        indexes = [
            models.Index(fields=["year", "rule", "region"]),
            models.Index(fields=["institution", "year"]),  # also serves the institution's PROTECT check
            *(models.Index(fields=[name], condition=models.Q(**{f"{name}__isnull": False}), name=f"finding_{name}")
              for name in ("person", "claim", "case", "contract")),
        ]

    def __str__(self):
        return f"{self.year} {self.rule} {self.rule_name}：{self.subject}"

    @property
    def document_serial(self):
        """结算流水号 or 病案号; empty for a finding on an institution, person or contract."""
        if self.claim_id:
            return self.claim.serial
        if self.case_id:
            return self.case.serial
        return ""


class FindingStep(models.Model):
    """One step of a finding's review: who moved it from which state to which, when and why."""

    finding = models.ForeignKey(Finding, verbose_name="疑点", on_delete=models.CASCADE, related_name="steps")
    from_status = models.CharField("原状态", max_length=5, choices=FindingStatus.choices)
    to_status = models.CharField("新状态", max_length=5, choices=FindingStatus.choices)
    reason = models.TextField("理由", blank=True)
    attachment = models.FileField("附件", upload_to="appeals/%Y/%m/", blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="操作人", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    at = models.DateTimeField("时间", auto_now_add=True)

    class Meta:
        verbose_name = "疑点核查记录"
        verbose_name_plural = verbose_name
        ordering = ["finding", "at", "pk"]

    def __str__(self):
        return f"{self.from_status} → {self.to_status}"


class RecoveryItem(models.Model):
    """What one settlement-run unit deducted of one confirmed finding (违规扣款, SPEC §9).

    A finding on one claim or case is deducted whole: one item, `claim` and `case` empty (the item is the
    finding's own). A finding over several claims or cases (FRQ01, FRQ02, REL01) is split over them:
    one item per claim or case, naming it, with that item's share of the 涉及金额; each share is deducted
    by the unit whose A holds that item, so one finding may have items in several units, and what no
    current run's A holds stays a stand-alone recovery for exactly the rest. One row per share (rather
    than one per unit and finding with the claims beside it) keeps "deducted once" a unique key and the
    drill-down a plain read of the rows that add up to the unit's 违规扣款.

    Written with the unit's gathered inputs and gone with them: a run restarted before approval takes
    the findings confirmed by then; an approved run's items never change, so a finding confirmed later
    is pending (待下一版本扣回) until the next version. A deducted finding, claim or case cannot be deleted.
    """

    unit = models.ForeignKey(RunUnit, verbose_name="结算单位", on_delete=models.CASCADE, related_name="recoveries")
    finding = models.ForeignKey(Finding, verbose_name="疑点", on_delete=models.PROTECT, related_name="recoveries")
    claim = models.ForeignKey(
        OutpatientClaim, verbose_name="分摊的门诊结算记录", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+", db_index=False,
    )
    case = models.ForeignKey(
        InpatientCase, verbose_name="分摊的住院病例", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+", db_index=False,
    )
    amount = money("扣款金额")

    class Meta:
        verbose_name = "违规扣款明细"
        verbose_name_plural = verbose_name
        ordering = ["unit", "finding", "claim", "case"]
        constraints = [
            # A whole finding (no claim, no case) or one share of it, at most once per unit.
            models.UniqueConstraint(fields=["unit", "finding", "claim", "case"], name="recovery_item_key",
                                    nulls_distinct=False),
            models.CheckConstraint(condition=models.Q(claim__isnull=True) | models.Q(case__isnull=True),
                                   name="recovery_item_one_share"),
        ]
        indexes = [
            # the PROTECT checks of a claim or case being deleted
            *(models.Index(fields=[name], condition=models.Q(**{f"{name}__isnull": False}), name=f"recovery_item_{name}")
              for name in ("claim", "case")),
        ]

    def __str__(self):
        return f"{self.unit} · {self.finding}"

    @property
    def is_share(self):
        return self.claim_id is not None or self.case_id is not None
