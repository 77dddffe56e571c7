"""Requests filed on inpatient cases (SPEC §6.5, §6.7): 特病单议 / 新技术 point reviews and 退出按病种付费.

Imported from settlement/engine/models.py so that Django registers them in the `settlement` app.
Both are scoped like their case (institution, county); every write goes through
settlement/engine/case_review_services.py.
"""
from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from alliances.scope import ScopedModel
from settlement.models import InpatientCase

__all__ = ["CaseReview", "DiseaseExitRequest", "RequestStatus", "ReviewKind"]


class RequestStatus(models.TextChoices):
    PENDING = "pending", "待审核"
    APPROVED = "approved", "已批准"
    REJECTED = "rejected", "已驳回"


class ReviewKind(models.TextChoices):
    SPECIAL_CASE = "special", "特病单议"
    NEW_TECHNOLOGY = "new_tech", "新技术"


class CaseRequest(ScopedModel, models.Model):
    """What both requests share: who filed it, who decided it and why."""

    reason = models.TextField("申请理由")
    status = models.CharField("状态", max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="申请人", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    filed_at = models.DateTimeField("申请时间", auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="审核人", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    decided_at = models.DateTimeField("审核时间", null=True, blank=True)
    decision_comment = models.TextField("审核意见", blank=True)

    scope_region = "case__institution__county"
    scope_institution = "case__institution"

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.case}（{self.get_status_display()}）"


class CaseReview(CaseRequest):
    """特病单议 / 新技术: the bureau's approved points replace the case's computed DRG points."""

    case = models.ForeignKey(InpatientCase, verbose_name="住院病例", on_delete=models.PROTECT, related_name="reviews")
    kind = models.CharField("类别", max_length=10, choices=ReviewKind.choices)
    proposed_points = models.DecimalField(
        "申请点数", max_digits=12, decimal_places=4, validators=[MinValueValidator(0)],
    )
    final_points = models.DecimalField(
        "核定点数", max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)],
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "特病单议申请"
        verbose_name_plural = verbose_name
        ordering = ["-filed_at"]
        constraints = [
            # A case has at most one live review: two approved ones would leave its points ambiguous.
            models.UniqueConstraint(
                fields=["case"], condition=~Q(status="rejected"), name="case_review_one_live",
            ),
            models.CheckConstraint(
                condition=Q(status="approved", final_points__isnull=False) | ~Q(status="approved"),
                name="case_review_approved_has_points",
            ),
        ]


class DiseaseExitRequest(CaseRequest):
    """退出按病种付费: an approved exit pays the case by item (SPEC §6.7)."""

    case = models.ForeignKey(
        InpatientCase, verbose_name="住院病例", on_delete=models.PROTECT, related_name="disease_exit_requests",
    )
    override = models.BooleanField("超比例特批", default=False, help_text="批准时病种退出率超过上限")
    override_reason = models.TextField("特批理由", blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "退出按病种付费申请"
        verbose_name_plural = verbose_name
        ordering = ["-filed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=~Q(status="rejected"), name="disease_exit_one_live",
            ),
            models.CheckConstraint(
                condition=Q(override=False) | ~Q(override_reason=""), name="disease_exit_override_has_reason",
            ),
        ]
