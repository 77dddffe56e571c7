"""Filing and deciding requests on inpatient cases (SPEC §1, §6.5, §6.7), and what the runs read of them.

- 特病单议 / 新技术 (`CaseReview`): hospital finance staff of the case's institution (or of its lead
  hospital) file with proposed points; city or county bureau staff approve with final points or reject
  with a comment. Only approved final points enter a DRG run (`approved_points`).
- 退出按病种付费 (`DiseaseExitRequest`): filed the same way on a per-disease case; approving is capped:
  a disease's exit rate at the institution in the year must stay ≤ the policy's cap (SX: 15%), and an
  approval that would pass it needs an explicit override with a reason, which is recorded.
- While requests for a year's cases are still 待审核, the DRG / per-disease run of that year can't be
  approved (`pending_blockers`, called through SchemeRule.approval_blockers).
"""
import datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alliances.models import Institution
from alliances.scope import Role, scope_for
from settlement.kpi_aggregates.services import refresh_disease_months
from settlement.models import InpatientCase, Scheme

from .case_requests import CaseReview, DiseaseExitRequest, RequestStatus, ReviewKind
from .models import PaymentPolicy
from .params import from_json
from .schemes.disease import DiseaseParams, check_exit_cap, disease_exit_counts
from .schemes.inpatient_common import DISEASE, classified_cases_sql, fetch_dicts


class CaseRequestError(Exception):
    """A request refused; the message is Chinese and meant for the user."""


# --- who may do what -------------------------------------------------------------------------


def _require_filer(user, case):
    """Hospital finance staff whose scope holds the case's institution (own, or led alliance member)."""
    if user is None or user.is_superuser:
        return
    scope = scope_for(user)
    if scope.role != Role.HOSPITAL:
        raise CaseRequestError("只有医疗机构财务人员可以提交申请")
    if case.institution_id not in scope.institution_ids:
        raise CaseRequestError(f"病例{case.serial}不属于本机构或本医共体，不能提交申请")


def _require_decider(user, case):
    """City bureau anywhere; county bureau for cases of its own county."""
    if user is None or user.is_superuser:
        return
    scope = scope_for(user)
    if scope.role not in (Role.CITY, Role.COUNTY):
        raise CaseRequestError("只有市、县区医保局工作人员可以审核申请")
    if scope.role == Role.COUNTY and case.institution.county_id not in scope.region_ids:
        raise CaseRequestError(f"病例{case.serial}不属于本县区，县区医保局只能审核本县区的申请")


def _points(value, label):
    try:
        points = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise CaseRequestError(f"{label}“{value}”不是有效的数字") from None
    if not points.is_finite() or points < 0:
        raise CaseRequestError(f"{label}不能为负数")
    if points != points.quantize(Decimal("0.0001")):
        raise CaseRequestError(f"{label}最多保留4位小数")
    return points


def _text(value):
    return (value or "").strip()


def _user(user):
    return user if user is not None and user.pk else None


# --- 特病单议 / 新技术 -------------------------------------------------------------------------


def file_case_review(case, *, kind, reason, proposed_points, user=None):
    _require_filer(user, case)
    if kind not in ReviewKind.values:
        raise CaseRequestError(f"申请类别“{kind}”无效，可选：{'、'.join(ReviewKind.labels)}")
    if not _text(reason):
        raise CaseRequestError("请填写申请理由")
    points = _points(proposed_points, "申请点数")
    with transaction.atomic():
        InpatientCase.objects.select_for_update().get(pk=case.pk)  # one live request per case, checked under lock
        live = CaseReview.objects.filter(case=case).exclude(status=RequestStatus.REJECTED).first()
        if live is not None:
            raise CaseRequestError(f"病例{case.serial}已有{live.get_status_display()}的特病单议申请，不能重复提交")
        return CaseReview.objects.create(
            case=case, kind=kind, reason=_text(reason), proposed_points=points, filed_by=_user(user),
        )


def decide_case_review(review, *, approve, user=None, final_points=None, comment=""):
    """Approve with final points (≥ 0; they replace the case's computed points) or reject with a comment."""
    with transaction.atomic():
        review = CaseReview.objects.select_for_update().select_related("case__institution").get(pk=review.pk)
        _require_decider(user, review.case)
        if review.status != RequestStatus.PENDING:
            raise CaseRequestError(f"该申请状态为“{review.get_status_display()}”，不能再次审核")
        if approve:
            if final_points in (None, ""):
                raise CaseRequestError("批准时须填写核定点数")
            review.final_points = _points(final_points, "核定点数")
            review.status = RequestStatus.APPROVED
        else:
            if not _text(comment):
                raise CaseRequestError("驳回时须填写审核意见")
            review.status = RequestStatus.REJECTED
        review.decision_comment = _text(comment)
        review.decided_by = _user(user)
        review.decided_at = timezone.now()
        review.save()
    return review


# --- 退出按病种付费 -------------------------------------------------------------------------


def per_disease_code(case):
    """The disease code under which the case is paid per disease, or None when it is not in that scheme."""
    rows = fetch_dicts(
        f"""SELECT d.code FROM ({classified_cases_sql(DISEASE)}) k JOIN contracts_disease d ON d.id = k.disease_id
             WHERE k.id = %(case_id)s""",
        {"date_from": case.discharge_date, "date_to": case.discharge_date, "case_id": case.pk},
    )
    return rows[0]["code"] if rows else None


def file_exit_request(case, *, reason, user=None):
    _require_filer(user, case)
    if not _text(reason):
        raise CaseRequestError("请填写申请理由")
    if per_disease_code(case) is None:
        raise CaseRequestError(f"病例{case.serial}不属于按病种付费病例，不能申请退出")
    with transaction.atomic():
        InpatientCase.objects.select_for_update().get(pk=case.pk)
        live = DiseaseExitRequest.objects.filter(case=case).exclude(status=RequestStatus.REJECTED).first()
        if live is not None:
            raise CaseRequestError(f"病例{case.serial}已有{live.get_status_display()}的退出申请，不能重复提交")
        return DiseaseExitRequest.objects.create(case=case, reason=_text(reason), filed_by=_user(user))


def exit_rate_cap(year, region_id):
    """The cap of the year's per-disease policy (the county's before the city's); SPEC default without one."""
    policies = PaymentPolicy.objects.filter(scheme=Scheme.DISEASE, year=year)
    policy = policies.filter(region_id=region_id).first() or policies.filter(region__isnull=True).first()
    params = from_json(DiseaseParams, policy.parameters) if policy is not None else DiseaseParams()
    return Decimal(params.exit_rate_cap)


def _percent(ratio):
    return f"{(ratio * 100).quantize(Decimal('0.01'))}%"


def decide_exit_request(request, *, approve, user=None, comment="", override=False, override_reason=""):
    """Approve (within the exit-rate cap, or over it with override and a reason) or reject with a comment."""
    with transaction.atomic():
        request = DiseaseExitRequest.objects.select_for_update().select_related("case__institution").get(pk=request.pk)
        case = request.case
        _require_decider(user, case)
        if request.status != RequestStatus.PENDING:
            raise CaseRequestError(f"该申请状态为“{request.get_status_display()}”，不能再次审核")
        if not approve:
            if not _text(comment):
                raise CaseRequestError("驳回时须填写审核意见")
            request.status = RequestStatus.REJECTED
        else:
            # Approvals of one institution are serialised, so two at once can't both slip under the cap.
            Institution.objects.select_for_update().get(pk=case.institution_id)
            disease_code = per_disease_code(case)
            if disease_code is None:
                raise CaseRequestError(f"病例{case.serial}已不属于按病种付费病例，无需退出")
            year = case.discharge_date.year
            cases, exits = disease_exit_counts(year, case.institution_id, disease_code, exited_case_ids(year))
            cap = exit_rate_cap(year, case.institution.county_id)
            check = check_exit_cap(cases, exits, cap)
            if not check.within_cap:
                if not (override and _text(override_reason)):
                    current = Decimal(exits) / Decimal(cases)
                    raise CaseRequestError(
                        f"{case.institution.name}{year}年病种{disease_code}当前退出率为{_percent(current)}"
                        f"（{exits}/{cases}），批准后为{_percent(check.rate_after)}（{check.exits_after}/{cases}），"
                        f"超过{_percent(cap)}上限；如确需批准，请勾选“超比例特批”并填写特批理由",
                    )
                request.override = True
                request.override_reason = _text(override_reason)
            request.status = RequestStatus.APPROVED
        request.decision_comment = _text(comment)
        request.decided_by = _user(user)
        request.decided_at = timezone.now()
        request.save()
        if request.status == RequestStatus.APPROVED:
            refresh_disease_months([case.discharge_date])  # 病种退出率 of the dashboard (settlement.kpi_aggregates)
    return request


# --- what runs and reports read -----------------------------------------------------------


def _year_cases(year):
    return Q(case__discharge_date__range=(datetime.date(year, 1, 1), datetime.date(year, 12, 31)))


def approved_points(year) -> dict[int, Decimal]:
    """case id → approved final points, for the cases discharged in the year (all of the city: a pool's
    point value needs every case of the pool, whichever county the run settles)."""
    return dict(
        CaseReview.objects.filter(_year_cases(year), status=RequestStatus.APPROVED)
        .values_list("case_id", "final_points")
    )


def exited_case_ids(year) -> set[int]:
    return set(
        DiseaseExitRequest.objects.filter(_year_cases(year), status=RequestStatus.APPROVED)
        .values_list("case_id", flat=True)
    )


def _region_cases(region_code):
    if not region_code:
        return Q()
    return Q(case__institution__county__code=region_code) | Q(case__institution__county__parent__code=region_code)


def pending_blockers(model, scheme, year, region_code, label) -> list[str]:
    """Why the run of (scheme, year, region) can't be approved yet: requests for its cases still 待审核,
    or decided after its computation started (its figures would not contain the decision)."""
    from .models import RunStatus, SettlementRun

    requests = model.objects.filter(_year_cases(year), _region_cases(region_code))
    blockers = []
    pending = requests.filter(status=RequestStatus.PENDING).count()
    if pending:
        blockers.append(f"还有{pending}件{label}待审核，请先处理完毕再审核结算")
    run = (
        SettlementRun.objects.filter(scheme=scheme, year=year, region__code=region_code, status=RunStatus.COMPUTED)
        .order_by("-version").first()
        if region_code else
        SettlementRun.objects.filter(scheme=scheme, year=year, region__isnull=True, status=RunStatus.COMPUTED)
        .order_by("-version").first()
    )
    if run is not None and run.started_at is not None:
        late = requests.filter(decided_at__gte=run.started_at).count()
        if late:
            blockers.append(f"有{late}件{label}在本次结算计算开始后才审核，请重新计算后再审核结算")
    return blockers
