"""Admin of the global-budget workflow (SPEC §6.4). Every write goes through alliances.services_budget."""
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from . import services_budget as svc
from .budget_models import (
    SEVEN_UNIFIED, AllianceBudgetPlan, AssessmentScheme, AssessmentWeight, BudgetApplication,
    BudgetWorkflowStep, CityLevelBudgetItem, KpiTarget, MemberAllocation, StepAction,
)
from .models import Alliance
from .scope import Role, restrict
from .scoped_admin import ScopedAdmin, ScopedInline


def _error_text(exc):
    if isinstance(exc, ValidationError):
        return "；".join(exc.messages)
    return str(exc) or "您没有权限执行此操作"


class DashboardLinkMixin:
    change_list_template = "alliances/change_list_with_dashboard.html"


# --- Applications ------------------------------------------------------------------------------


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = BudgetApplication
        fields = ["alliance", "year", *[name for name, _ in SEVEN_UNIFIED], "unified_notes",
                  "contact_name", "contact_phone", "statement"]

    def clean(self):
        cleaned = super().clean()
        try:
            if self.instance.pk:
                svc.check_can_edit(self.user, self.instance)
            elif cleaned.get("alliance"):
                svc.check_can_create(self.user, cleaned["alliance"])
        except (PermissionDenied, ValidationError) as exc:
            raise ValidationError(_error_text(exc)) from None
        return cleaned


class RecordInline(admin.TabularInline):
    """Rows written only by a workflow service: shown to whoever sees the parent, never edited here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True


class StepInline(RecordInline):
    model = BudgetWorkflowStep
    fields = ("acted_at", "action", "actor", "from_status", "to_status", "comment")
    readonly_fields = fields
    verbose_name_plural = "审批记录"



@admin.register(BudgetApplication)
class BudgetApplicationAdmin(DashboardLinkMixin, ScopedAdmin):
    form = ApplicationForm
    change_form_template = "alliances/budgetapplication_change_form.html"
    list_display = ("alliance", "year", "status", "submitted_at", "effective_from", "print_link")
    list_filter = ("status", "year")
    search_fields = ("alliance__code", "alliance__name")
    list_select_related = ("alliance",)
    readonly_fields = ("status", "member_snapshot_table", "submitted_at", "approved_at", "effective_from",
                       "withdrawn_at", "withdrawal_reason")
    inlines = [StepInline]

    @admin.display(description="打印")
    def print_link(self, obj):
        from django.utils.html import format_html

        return format_html('<a href="{}" target="_blank">打印申请书</a>',
                           reverse("admin:alliances_budgetapplication_print", args=[obj.pk]))

    @admin.display(description="成员机构（提交时）")
    def member_snapshot_table(self, obj):
        from django.utils.html import format_html_join

        if not obj.member_snapshot:
            return "提交时自动列出在册成员机构"
        return format_html_join(
            "", "<div>{}（{}，{}）{}</div>",
            ((m["name"], m["code"], m["level"], "【总医院】" if m["is_lead"] else "") for m in obj.member_snapshot),
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("alliance")
            try:
                svc.check_can_edit(request.user, obj)
            except (PermissionDenied, ValidationError):
                fields += [f for f in ApplicationForm.Meta.fields if f not in fields]
        return fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "alliance":
            actor = svc.actor_of(request.user)
            # Only the lead hospital applies, so only the alliances it leads are offered.
            kwargs["queryset"] = Alliance.objects.filter(lead_hospital_id=actor.institution_id or 0)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        fields = {k: v for k, v in form.cleaned_data.items() if k in svc.EDITABLE_FIELDS}
        if change:
            saved = svc.update_application(request.user, obj, **fields)
        else:
            fields.pop("year", None)
            saved = svc.create_application(request.user, form.cleaned_data["alliance"], form.cleaned_data["year"], **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False  # the history of an application is part of the record

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/step/<str:action>/", self.admin_site.admin_view(self.step_view),
                 name="%s_%s_step" % info),
            path("<path:object_id>/print/", self.admin_site.admin_view(self.print_view), name="%s_%s_print" % info),
        ] + super().get_urls()

    def _get_in_scope(self, request, object_id):
        self._require_in_scope(request, object_id)
        return self.get_queryset(request).select_related("alliance__county", "alliance__lead_hospital").get(pk=object_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._require_in_scope(request, object_id)
        application = self.get_queryset(request).get(pk=object_id)
        extra_context = {
            **(extra_context or {}),
            "step_buttons": [
                (action.label, reverse("admin:alliances_budgetapplication_step", args=[application.pk, action.value]))
                for action in svc.allowed_actions(application, request.user)
            ],
            "print_url": reverse("admin:alliances_budgetapplication_print", args=[application.pk]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def step_view(self, request, object_id, action):
        application = self._get_in_scope(request, object_id)
        try:
            action = StepAction(action)
        except ValueError:
            raise Http404("没有这个审批操作") from None
        change_url = reverse("admin:alliances_budgetapplication_change", args=[application.pk])
        if request.method == "POST":
            try:
                svc.STEP_FUNCTIONS[action](request.user, application, request.POST.get("comment", ""))
            except (PermissionDenied, ValidationError) as exc:
                messages.error(request, _error_text(exc))
            else:
                messages.success(request, f"已完成“{action.label}”")
            return redirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{action.label}：{application.alliance.name}",
            "application": application,
            "action": action,
            "comment_required": action in (StepAction.RETURN, StepAction.WITHDRAW),
            "change_url": change_url,
        }
        return TemplateResponse(request, "alliances/application_step.html", context)

    def print_view(self, request, object_id):
        application = self._get_in_scope(request, object_id)
        members = application.member_snapshot or svc.member_rows(
            application.alliance, application.created_at.date(),
        )
        steps = {step.action: step for step in application.steps.select_related("actor")}
        return TemplateResponse(request, "alliances/application.html", {
            "application": application,
            "alliance": application.alliance,
            "members": members,
            "health_step": steps.get(StepAction.HEALTH_CONFIRM),
            "county_step": steps.get(StepAction.COUNTY_CONFIRM),
            "approve_step": steps.get(StepAction.APPROVE),
            "unified_items": application.unified_items(),
        })


@admin.register(BudgetWorkflowStep)
class BudgetWorkflowStepAdmin(ScopedAdmin):
    list_display = ("acted_at", "application", "action", "actor", "from_status", "to_status", "comment")
    list_filter = ("action",)
    list_select_related = ("application__alliance", "actor")
    date_hierarchy = "acted_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Budget composition and allocation ------------------------------------------------------------


class PlanForm(forms.ModelForm):
    class Meta:
        model = AllianceBudgetPlan
        fields = ["alliance", "year", "insurance_type", "annual_budget", "risk_reserve",
                  "out_of_city_history_1", "out_of_city_history_2", "out_of_city_history_3"]

    def clean(self):
        cleaned = super().clean()
        alliance = cleaned.get("alliance") or getattr(self.instance, "alliance", None)
        try:
            if alliance is not None:
                svc.require_budget_office(self.user, alliance)
            history = [cleaned.get(f"out_of_city_history_{i}") for i in (1, 2, 3)]
            if any(h is not None for h in history):
                svc.estimate_out_of_city(history)
        except (PermissionDenied, ValidationError) as exc:
            raise ValidationError(_error_text(exc)) from None
        return cleaned


class CityItemInline(ScopedInline, admin.TabularInline):
    model = CityLevelBudgetItem
    extra = 1
    fields = ("item", "note", "amount")


class AllocationInline(RecordInline):
    model = MemberAllocation
    fields = ("institution", "amount")
    readonly_fields = fields
    verbose_name_plural = "成员机构预算分配（由总医院通过“分配到成员机构”办理）"



@admin.register(AllianceBudgetPlan)
class AllianceBudgetPlanAdmin(DashboardLinkMixin, ScopedAdmin):
    form = PlanForm
    change_form_template = "alliances/budgetplan_change_form.html"
    list_display = ("alliance", "year", "insurance_type", "annual_budget", "risk_reserve", "budget_display",
                    "out_of_city_estimate", "allocatable_display")
    list_filter = ("year", "insurance_type")
    search_fields = ("alliance__code", "alliance__name")
    list_select_related = ("alliance",)
    readonly_fields = ("out_of_city_estimate", "budget_display", "allocatable_display")
    inlines = [CityItemInline, AllocationInline]

    @admin.display(description="总额付费预算（扣除风险储备金）")
    def budget_display(self, obj):
        return obj.budget_amount

    @admin.display(description="可分配给成员机构的额度")
    def allocatable_display(self, obj):
        return obj.allocatable

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "alliance":
            kwargs["queryset"] = restrict(Alliance.objects.all(), request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = svc.save_budget_plan(
            request.user, data["alliance"], data["year"], data["insurance_type"], data["annual_budget"],
            data["risk_reserve"], [data.get(f"out_of_city_history_{i}") for i in (1, 2, 3)],
        )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/allocate/", self.admin_site.admin_view(self.allocate_view),
                 name="%s_%s_allocate" % info),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._require_in_scope(request, object_id)
        plan = self.get_queryset(request).select_related("alliance").get(pk=object_id)
        actor = svc.actor_of(request.user)
        extra_context = {**(extra_context or {})}
        if actor.role == Role.HOSPITAL and actor.institution_id == plan.alliance.lead_hospital_id:
            extra_context["allocate_url"] = reverse("admin:alliances_alliancebudgetplan_allocate", args=[plan.pk])
        return super().change_view(request, object_id, form_url, extra_context)

    def allocate_view(self, request, object_id):
        self._require_in_scope(request, object_id)
        plan = self.get_queryset(request).select_related("alliance__lead_hospital").get(pk=object_id)
        try:
            svc.require_lead_staff(request.user, plan.alliance)
        except PermissionDenied as exc:
            messages.error(request, _error_text(exc))
            return redirect(reverse("admin:alliances_alliancebudgetplan_change", args=[plan.pk]))
        import datetime

        first, last = datetime.date(plan.year, 1, 1), datetime.date(plan.year, 12, 31)
        members = [
            m.institution for m in plan.alliance.memberships.filter(joined_on__lte=last)
            .filter(Q(left_on__isnull=True) | Q(left_on__gte=first)).select_related("institution")
            .order_by("institution__code")
        ]
        current = {a.institution_id: a.amount for a in plan.allocations.all()}
        rows = [(inst, request.POST.get(f"amount_{inst.pk}", current.get(inst.pk, ""))) for inst in members]
        if request.method == "POST":
            try:
                amounts = {}
                for inst, raw in rows:
                    try:
                        amounts[inst] = Decimal(str(raw).strip() or "0")
                    except ArithmeticError:
                        raise ValidationError(f"{inst.name}的分配额度“{raw}”不是有效金额") from None
                svc.set_member_allocations(request.user, plan, amounts)
            except (PermissionDenied, ValidationError) as exc:
                messages.error(request, _error_text(exc))
            else:
                messages.success(request, "成员机构预算分配已保存")
                return redirect(reverse("admin:alliances_alliancebudgetplan_change", args=[plan.pk]))
        return TemplateResponse(request, "alliances/allocate.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"分配到成员机构：{plan}",
            "plan": plan,
            "rows": rows,
        })


@admin.register(MemberAllocation)
class MemberAllocationAdmin(ScopedAdmin):
    list_display = ("plan", "institution", "amount")
    list_filter = ("plan__year", "plan__insurance_type")
    list_select_related = ("plan__alliance", "institution")

    # Allocations change only as a whole, through the plan's "分配到成员机构" page (Σ must hold).
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- KPI targets and assessment ---------------------------------------------------------------


@admin.register(KpiTarget)
class KpiTargetAdmin(DashboardLinkMixin, ScopedAdmin):
    list_display = ("kpi", "year", "comparison", "target", "tolerance", "source")
    list_filter = ("kpi", "year")


class WeightFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        total = Decimal("0")
        for form in self.forms:
            if form.cleaned_data and not form.cleaned_data.get("DELETE"):
                total += form.cleaned_data.get("weight") or Decimal("0")
        if total != Decimal("100"):
            raise ValidationError(f"各指标权重合计应为100分，当前为{total.normalize():f}分")


class WeightInline(ScopedInline, admin.TabularInline):
    model = AssessmentWeight
    formset = WeightFormSet
    extra = 4


@admin.register(AssessmentScheme)
class AssessmentSchemeAdmin(DashboardLinkMixin, ScopedAdmin):
    list_display = ("year", "name")
    inlines = [WeightInline]
    actions = ["compute_alliance_scores"]

    @admin.action(description="按指标计算所选年度的医共体考核得分")
    def compute_alliance_scores(self, request, queryset):
        for scheme in queryset:
            try:
                outcome = svc.compute_assessments(request.user, scheme.year)
            except (PermissionDenied, ValidationError) as exc:
                messages.error(request, f"{scheme.year}年：{_error_text(exc)}")
                continue
            summary = "，".join(f"{code} {score}分" for code, (score, _) in outcome.scores.items()) or "无"
            messages.success(request, f"{scheme.year}年考核得分已写入考核结果：{summary}")
            for code, reason in outcome.skipped.items():
                messages.warning(request, f"{scheme.year}年{code}未计分：{reason}")

