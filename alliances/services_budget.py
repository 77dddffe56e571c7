"""Writes of the "one total" global budget (SPEC §6.4, KF §4–§6).

Every workflow step is one function that checks the actor's role and scope first, then moves the
application from one status to the next inside one transaction, records a step (who, when, from,
to, comment) and mirrors the status onto the alliance. A wrong actor gets PermissionDenied, a
wrong state or bad input a ValidationError; either way nothing is written.
"""
import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from .budget_models import (
    SEVEN_UNIFIED, AllianceBudgetPlan, ApplicationStatus, AssessmentScheme, BudgetApplication,
    BudgetWorkflowStep, CityLevelBudgetItem, Comparison, Kpi, KpiTarget, MemberAllocation, StepAction,
)
from .models import Alliance, Membership, UserScope
from .hooks import door
from .scope import Role, restrict

CENT = Decimal("0.01")
HUNDRED = Decimal("100")


def q2(value):
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# --- Who is acting --------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    role: str | None
    region_id: int | None = None
    institution_id: int | None = None


def actor_of(user) -> Actor:
    if user is None or not user.is_authenticated or not user.is_active:
        return Actor(None)
    if user.is_superuser:
        return Actor(Role.CITY)
    profile = UserScope.objects.filter(user=user).only("role", "region_id", "institution_id").first()
    if profile is None:
        return Actor(None)
    return Actor(profile.role, profile.region_id, profile.institution_id)


def _is_lead_staff(actor, alliance):
    return actor.role == Role.HOSPITAL and actor.institution_id == alliance.lead_hospital_id


def _is_regional(actor, role, alliance):
    return actor.role == role and actor.region_id == alliance.county_id


def require_lead_staff(user, alliance):
    if not _is_lead_staff(actor_of(user), alliance):
        raise PermissionDenied(f"只有{alliance.name}总医院（{alliance.lead_hospital.name}）的工作人员可以办理此事项")


def require_budget_office(user, alliance):
    """City bureau, or the bureau of the alliance's own county (SPEC §1: counties compute budgets)."""
    actor = actor_of(user)
    if actor.role == Role.CITY or _is_regional(actor, Role.COUNTY, alliance):
        return actor
    raise PermissionDenied(f"只有市医保局或{alliance.county.name}医保局可以编制{alliance.name}的预算")


# --- Application workflow -------------------------------------------------------------------


def first_day_of_next_month(day: datetime.date) -> datetime.date:
    if day.month == 12:
        return datetime.date(day.year + 1, 1, 1)
    return datetime.date(day.year, day.month + 1, 1)


def members_in_force(alliance, on: datetime.date):
    return (
        Membership.objects.filter(alliance=alliance, joined_on__lte=on)
        .filter(Q(left_on__isnull=True) | Q(left_on__gte=on))
        .select_related("institution")
        .order_by("institution__code")
    )


def member_rows(alliance, on):
    """The members table of the application (KF annex: "包括×××、……等×家定点医疗机构")."""
    return [
        {
            "code": m.institution.code,
            "name": m.institution.name,
            "level": m.institution.level,
            "is_lead": m.institution_id == alliance.lead_hospital_id,
            "joined_on": m.joined_on.isoformat(),
        }
        for m in members_in_force(alliance, on)
    ]


EDITABLE_FIELDS = {name for name, _ in SEVEN_UNIFIED} | {
    "unified_notes", "contact_name", "contact_phone", "statement", "year",
}


def _apply_fields(application, fields):
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ValidationError(f"申请中没有这些栏目：{'、'.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(application, name, value)
    try:
        year_ok = 2000 <= int(application.year) <= 2100
    except (TypeError, ValueError):
        year_ok = False
    if not year_ok:
        raise ValidationError(f"申请年度“{application.year}”无效")
    try:
        application.full_clean(exclude=["alliance", "created_by"])
    except ValidationError as exc:
        raise labelled(exc, BudgetApplication) from None


def labelled(exc, model):
    """A field error as "栏目名：原因", so a message read outside its form still says which field."""
    if not hasattr(exc, "error_dict"):
        return exc
    messages = []
    for name, errors in exc.message_dict.items():
        try:
            label = model._meta.get_field(name).verbose_name
        except FieldDoesNotExist:  # NON_FIELD_ERRORS
            label = ""
        messages += [f"{label}：{message}" if label else message for message in errors]
    return ValidationError(messages)


def check_can_create(user, alliance):
    """Raise unless `user` may start an application for `alliance` now (also used by the admin form)."""
    require_lead_staff(user, alliance)
    open_app = BudgetApplication.objects.filter(
        alliance=alliance, status__in=[s for s in ApplicationStatus.values if s != ApplicationStatus.WITHDRAWN],
    ).first()
    if open_app is not None:
        raise ValidationError(f"{alliance.name}已有一份“{open_app.get_status_display()}”的申请，不能重复申请")


def check_can_edit(user, application):
    require_lead_staff(user, application.alliance)
    if application.status not in (ApplicationStatus.DRAFT, ApplicationStatus.RETURNED):
        raise ValidationError(f"申请处于“{application.get_status_display()}”状态，不能修改")


@transaction.atomic
def create_application(user, alliance, year, **fields):
    """The lead hospital drafts its application (KF annex template)."""
    # Serialises two drafts of the same alliance racing past the open-application check.
    Alliance.objects.select_for_update().get(pk=alliance.pk)
    check_can_create(user, alliance)
    application = BudgetApplication(alliance=alliance, year=year, created_by=user)
    _apply_fields(application, fields)
    application.save()
    return application


@transaction.atomic
def update_application(user, application, **fields):
    application = _locked(application)
    check_can_edit(user, application)
    _apply_fields(application, fields)
    application.save()
    return application


def _locked(application):
    return BudgetApplication.objects.select_for_update().select_related(
        "alliance", "alliance__county", "alliance__lead_hospital",
    ).get(pk=application.pk)


@dataclass(frozen=True)
class Transition:
    from_statuses: tuple
    to_status: str
    allowed: object  # (actor, alliance) → bool
    denied: str  # Chinese refusal, formatted with the alliance
    comment_required: bool = False


def _reviewer_of(status):
    """Who reviews an application in a given status (the one who may also return it)."""
    return {
        ApplicationStatus.SUBMITTED: lambda a, al: _is_regional(a, Role.HEALTH, al),
        ApplicationStatus.HEALTH_CONFIRMED: lambda a, al: _is_regional(a, Role.COUNTY, al),
        ApplicationStatus.COUNTY_CONFIRMED: lambda a, al: a.role == Role.CITY,
    }.get(status, lambda a, al: False)


TRANSITIONS = {
    StepAction.SUBMIT: Transition(
        (ApplicationStatus.DRAFT, ApplicationStatus.RETURNED), ApplicationStatus.SUBMITTED,
        _is_lead_staff, "只有{alliance.name}总医院的工作人员可以提交申请",
    ),
    StepAction.HEALTH_CONFIRM: Transition(
        (ApplicationStatus.SUBMITTED,), ApplicationStatus.HEALTH_CONFIRMED,
        lambda a, al: _is_regional(a, Role.HEALTH, al), "只有{alliance.county.name}卫健委可以确认七统一",
    ),
    StepAction.COUNTY_CONFIRM: Transition(
        (ApplicationStatus.HEALTH_CONFIRMED,), ApplicationStatus.COUNTY_CONFIRMED,
        lambda a, al: _is_regional(a, Role.COUNTY, al), "只有{alliance.county.name}医保局可以确认申请",
    ),
    StepAction.APPROVE: Transition(
        (ApplicationStatus.COUNTY_CONFIRMED,), ApplicationStatus.APPROVED,
        lambda a, al: a.role == Role.CITY, "只有市医保局可以审批总额付费申请",
    ),
    StepAction.RETURN: Transition(
        (ApplicationStatus.SUBMITTED, ApplicationStatus.HEALTH_CONFIRMED, ApplicationStatus.COUNTY_CONFIRMED),
        ApplicationStatus.RETURNED,
        None, "只有当前环节的审核部门可以退回申请", comment_required=True,
    ),
    StepAction.WITHDRAW: Transition(
        (ApplicationStatus.APPROVED,), ApplicationStatus.WITHDRAWN,
        lambda a, al: a.role == Role.CITY, "只有市医保局可以决定医共体退出总额付费", comment_required=True,
    ),
}


def _may(actor, action, application):
    transition = TRANSITIONS[action]
    check = transition.allowed or _reviewer_of(application.status)
    return check(actor, application.alliance)


def allowed_actions(application, user):
    """The steps this user may take on the application now (drives the admin buttons)."""
    actor = actor_of(user)
    return [
        action for action, transition in TRANSITIONS.items()
        if application.status in transition.from_statuses and _may(actor, action, application)
    ]


def _step(user, application, action, comment="", on_change=None):
    application = _locked(application)
    transition = TRANSITIONS[action]
    actor = actor_of(user)
    if not _may(actor, action, application):
        raise PermissionDenied(transition.denied.format(alliance=application.alliance))
    if application.status not in transition.from_statuses:
        raise ValidationError(
            f"申请当前为“{application.get_status_display()}”，不能执行“{StepAction(action).label}”"
        )
    comment = (comment or "").strip()
    if transition.comment_required and not comment:
        noun = "退出原因" if action == StepAction.WITHDRAW else "退回意见"
        raise ValidationError(f"请填写{noun}")
    from_status = application.status
    now = timezone.now()
    if on_change:
        on_change(application, now)
    application.status = transition.to_status
    application.save()
    alliance = application.alliance
    alliance.budget_status = transition.to_status
    if transition.to_status == ApplicationStatus.APPROVED:
        alliance.budget_effective_from = application.effective_from
    alliance.save(update_fields=["budget_status", "budget_effective_from"])
    BudgetWorkflowStep.objects.create(
        application=application, action=action, actor=user, acted_at=now,
        from_status=from_status, to_status=transition.to_status, comment=comment,
    )
    return application


@transaction.atomic
def submit_application(user, application, comment=""):
    def check_and_snapshot(app, now):
        missing = [label for name, label in SEVEN_UNIFIED if not getattr(app, name)]
        if missing:
            raise ValidationError(f"尚未达到“七统一”要求，不能申请总额付费：{'、'.join(missing)}未勾选")
        rows = member_rows(app.alliance, timezone.localdate(now))
        if not rows:
            raise ValidationError(f"{app.alliance.name}目前没有在册成员机构，不能申请")
        app.member_snapshot = rows
        app.submitted_at = now

    return _step(user, application, StepAction.SUBMIT, comment, check_and_snapshot)


@transaction.atomic
def confirm_unified(user, application, comment=""):
    """County health commission: the alliance meets the "七统一" requirements."""
    return _step(user, application, StepAction.HEALTH_CONFIRM, comment)


@transaction.atomic
def confirm_by_county(user, application, comment=""):
    return _step(user, application, StepAction.COUNTY_CONFIRM, comment)


@transaction.atomic
def approve_application(user, application, comment=""):
    """City bureau approval; global-budget payment applies from the next month (SPEC §6.4)."""

    def set_effective(app, now):
        app.approved_at = now
        app.effective_from = first_day_of_next_month(timezone.localdate(now))

    return _step(user, application, StepAction.APPROVE, comment, set_effective)


@transaction.atomic
def return_application(user, application, comment):
    return _step(user, application, StepAction.RETURN, comment)


@transaction.atomic
def withdraw_alliance(user, application, reason):
    """退出机制 (KF §6(四)): the city bureau takes an alliance out of global-budget payment."""

    def record(app, now):
        app.withdrawn_at = now
        app.withdrawal_reason = (reason or "").strip()

    return _step(user, application, StepAction.WITHDRAW, reason, record)


STEP_FUNCTIONS = {
    StepAction.SUBMIT: submit_application,
    StepAction.HEALTH_CONFIRM: confirm_unified,
    StepAction.COUNTY_CONFIRM: confirm_by_county,
    StepAction.APPROVE: approve_application,
    StepAction.RETURN: return_application,
    StepAction.WITHDRAW: withdraw_alliance,
}


# --- Budget composition and allocation --------------------------------------------------------


def estimate_out_of_city(history):
    """Out-of-city budget "接近1–3年医保实际支出总额核定": the mean of the years given."""
    amounts = [Decimal(a) for a in history if a is not None]
    if not 1 <= len(amounts) <= 3:
        raise ValidationError("市域外就医预算须依据近1至3年的实际支出核定，请填写1至3个年度的金额")
    if any(a < 0 for a in amounts):
        raise ValidationError("市域外就医历史支出不能为负数")
    return q2(sum(amounts) / len(amounts))


@transaction.atomic
def save_budget_plan(user, alliance, year, insurance_type, annual_budget, risk_reserve,
                     out_of_city_history=(), city_items=None):
    """Write the composition of one insurance type's total and the settled Budget row B.

    city_items: (item, amount[, note]) kept outside the total at city level; None keeps the rows
    there are (the admin saves them through its inline).
    """
    require_budget_office(user, alliance)
    if insurance_type not in ("职工", "居民"):
        raise ValidationError(f"险种“{insurance_type}”无效，应为职工或居民（两个险种分别预算）")
    history = list(out_of_city_history) + [None] * (3 - len(out_of_city_history))
    if len(history) > 3:
        raise ValidationError("市域外就医历史支出最多填写3个年度")
    plan, _ = AllianceBudgetPlan.objects.select_for_update().get_or_create(
        alliance=alliance, year=year, insurance_type=insurance_type,
        defaults={"annual_budget": Decimal(annual_budget)},
    )
    plan.annual_budget = Decimal(annual_budget)
    plan.risk_reserve = Decimal(risk_reserve)
    plan.out_of_city_history_1, plan.out_of_city_history_2, plan.out_of_city_history_3 = history
    plan.out_of_city_estimate = estimate_out_of_city(history) if any(h is not None for h in history) else Decimal("0")
    try:
        plan.full_clean()
    except ValidationError as exc:
        raise labelled(exc, AllianceBudgetPlan) from None
    plan.save()
    if city_items is not None:
        plan.city_items.all().delete()
    for row in city_items or ():
        item, amount, note = (tuple(row) + ("",))[:3]
        obj = CityLevelBudgetItem(plan=plan, item=item, amount=Decimal(amount), note=note)
        obj.full_clean(exclude=["plan"])
        obj.save()
    # The settled B is a settlement Budget row (settlement.doors.save_alliance_budget, via alliances.hooks).
    door("save_alliance_budget")(year, alliance.code, insurance_type, plan.budget_amount)
    return plan


def check_allocations(plan):
    """Σ member allocations = the budget available for allocation of that insurance type."""
    total = plan.allocations.aggregate(total=Sum("amount"))["total"] or Decimal("0.00")
    if total != plan.allocatable:
        raise ValidationError(
            f"{plan.alliance.name}{plan.year}年{plan.insurance_type}医保成员机构分配合计{q2(total)}元，"
            f"应等于可分配额度{q2(plan.allocatable)}元（差额{q2(plan.allocatable - total)}元）"
        )
    return total


@transaction.atomic
def set_member_allocations(user, plan, amounts):
    """The lead hospital allocates one insurance type's budget to members: {institution: amount}."""
    plan = AllianceBudgetPlan.objects.select_for_update().select_related("alliance__lead_hospital").get(pk=plan.pk)
    require_lead_staff(user, plan.alliance)
    first, last = datetime.date(plan.year, 1, 1), datetime.date(plan.year, 12, 31)
    member_ids = set(
        Membership.objects.filter(alliance=plan.alliance, joined_on__lte=last)
        .filter(Q(left_on__isnull=True) | Q(left_on__gte=first))
        .values_list("institution_id", flat=True)
    )
    plan.allocations.all().delete()
    for institution, amount in amounts.items():
        if institution.pk not in member_ids:
            raise ValidationError(f"{institution.name}在{plan.year}年不是{plan.alliance.name}的成员机构，不能分配预算")
        amount = Decimal(amount)
        if amount < 0:
            raise ValidationError(f"{institution.name}的分配额度不能为负数")
        MemberAllocation.objects.create(plan=plan, institution=institution, amount=amount)
    check_allocations(plan)
    return plan


@transaction.atomic
def pool_between_members(user, source, target, amount):
    """调剂: move part of one member's allocation to another, within one insurance type only."""
    rows = {
        row.pk: row for row in MemberAllocation.objects.select_for_update()
        .select_related("plan__alliance__lead_hospital", "institution").filter(pk__in=[source.pk, target.pk])
        .order_by("pk")
    }
    source, target = rows[source.pk], rows[target.pk]
    require_lead_staff(user, source.plan.alliance)
    if source.plan.alliance_id != target.plan.alliance_id or source.plan.year != target.plan.year:
        raise ValidationError("只能在同一医共体同一年度的成员机构之间调剂")
    if source.plan.insurance_type != target.plan.insurance_type:
        raise ValidationError(
            f"成员机构之间只能在同险种内调剂使用，不能从{source.plan.insurance_type}医保调剂到{target.plan.insurance_type}医保"
        )
    amount = Decimal(amount)
    if amount <= 0:
        raise ValidationError("调剂金额必须大于0")
    if amount > source.amount:
        raise ValidationError(f"{source.institution.name}的分配额度只有{source.amount}元，不足调出{amount}元")
    source.amount -= amount
    target.amount += amount
    source.save(update_fields=["amount"])
    target.save(update_fields=["amount"])
    check_allocations(source.plan)
    return source, target


# --- Assessment ------------------------------------------------------------------------------


def validate_weights(scheme):
    total = sum((w.weight for w in scheme.weights.all()), Decimal("0"))
    if total != HUNDRED:
        raise ValidationError(f"{scheme.year}年考核方案各指标权重合计应为100分，当前为{total.normalize():f}分")
    return total


def attainment(value, target):
    """How far a KPI value meets its target, from 0 to 1 (documented per comparison):

    - 不低于 t: value / t, capped at 1 (t ≤ 0: 1 when value ≥ t else 0);
    - 不高于 t: 1 when value ≤ t, else 1 − (value − t) / |t| floored at 0, so 8% growth against
      an 8% ceiling scores 1 and 12% scores 0.5 (t = 0: 0 once above);
    - 左右 t ± d: 1 inside the band, else 1 − (distance beyond the band) / t, floored at 0.
    """
    value = Decimal(value)
    t, d = Decimal(target.target), Decimal(target.tolerance)
    one, zero = Decimal("1"), Decimal("0")
    if target.comparison == Comparison.AT_LEAST:
        if t <= 0:
            return one if value >= t else zero
        return min(one, max(zero, value / t))
    if target.comparison == Comparison.AT_MOST:
        if value <= t:
            return one
        if t == 0:
            return zero
        return max(zero, one - (value - t) / abs(t))
    gap = max(zero, abs(value - t) - d)
    if t == 0:
        return one if gap == 0 else zero
    return max(zero, one - gap / abs(t))


@dataclass(frozen=True)
class ScoreLine:
    kpi: str
    weight: Decimal
    value: Decimal
    attainment: Decimal
    points: Decimal


def score_from_kpis(weights, values, targets):
    """score = Σ weight × attainment, rounded to 0.01 once; weights {kpi: points summing to 100}."""
    lines, total = [], Decimal("0")
    for kpi, weight in weights.items():
        label = Kpi(kpi).label
        if kpi not in targets:
            raise ValidationError(f"指标“{label}”没有设定目标值，无法计分")
        value = values.get(kpi)
        if value is None:
            raise ValidationError(f"指标“{label}”暂无数据，无法计分；请调整考核权重或手工录入得分")
        reached = attainment(value, targets[kpi])
        points = weight * reached
        total += points
        lines.append(ScoreLine(kpi, weight, Decimal(value), reached, q2(points)))
    return q2(total), lines


@dataclass
class AssessmentOutcome:
    scores: dict  # unit code → (score, [ScoreLine])
    skipped: dict  # unit code → why it could not be scored (nothing written for it)


@transaction.atomic
def compute_assessments(user, year, level="alliance"):
    """Scores per alliance (or institution) in the user's scope, written to settlement Assessment.

    A unit whose KPIs lack data is skipped with its reason, never scored on an invented number;
    its settlement then stops on the missing assessment until one is computed or entered by hand.
    """
    from .models import Institution

    actor = actor_of(user)
    if actor.role not in (Role.CITY, Role.COUNTY):
        raise PermissionDenied("只有市医保局或县区医保局可以计算考核得分")
    scheme = AssessmentScheme.objects.filter(year=year).first()
    if scheme is None:
        raise ValidationError(f"{year}年尚未设定考核方案（指标权重）")
    validate_weights(scheme)
    weights = {w.kpi: w.weight for w in scheme.weights.all() if w.weight}
    targets = KpiTarget.for_year(year)
    missing = [Kpi(kpi).label for kpi in weights if kpi not in targets]
    if missing:
        raise ValidationError(f"以下指标没有设定目标值，无法计分：{'、'.join(missing)}")
    if level == "alliance":
        units = restrict(Alliance.objects.all(), user)
    elif level == "institution":
        units = restrict(Institution.objects.all(), user)
    else:
        raise ValidationError(f"考核对象“{level}”无效，应为alliance或institution")
    # The KPIs read claims and cases: settlement's (settlement.analysis.kpis.unit_kpis, via alliances.hooks).
    figures = door("kpi_figures")(level, year, units)
    outcome = AssessmentOutcome({}, {})
    for unit in units.order_by("code"):
        try:
            score, lines = score_from_kpis(weights, figures[unit.pk].values, targets)
        except ValidationError as exc:
            outcome.skipped[unit.code] = "；".join(exc.messages)
            continue
        door("save_assessment")(year, unit.code, score)
        outcome.scores[unit.code] = (score, lines)
    return outcome
