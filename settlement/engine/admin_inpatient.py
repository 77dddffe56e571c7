"""Admin for the inpatient schemes (SPEC §6.5–§6.7), imported at the end of settlement/engine/admin.py.

- 特病单议 / 新技术 and 退出按病种付费 requests: hospital staff add them, bureau staff decide them on a
  decision page; every write is a call to case_review_services.
- 床日监测: average stay, daily cost against the quota and stays over the cap, linked from the
  床日付费标准 changelist.
- The DRG unit result page lists every case's derivation of points (paginated).
- 基准点数测算: the DRG catalogue's proposals from the last two years' cases, adopted by the city bureau
  (drg_calibration does the reading and writing), linked from the DRG病组 changelist.
"""
import datetime
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from alliances.models import Institution, Region
from alliances.scope import Role, scope_for
from alliances.scoped_admin import ScopedAdmin
from settlement.admin import DrgGroupAdmin
from settlement.models import BedDayQuota, DrgGroup, Scheme

from . import case_review_services as requests_services
from . import drg_calibration
from .admin import UnitResultAdmin
from .base import RunContext, get_rule, q4
from .case_requests import CaseReview, DiseaseExitRequest, RequestStatus
from .models import PaymentPolicy, UnitResult
from .params import from_json
from .schemes.bed_day import BedDayParams, bed_day_monitoring
from .schemes.drg import DrgParams, case_derivation
from .services import SettlementError

CASES_PER_PAGE = 100


# --- requests ---------------------------------------------------------------------------------


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(label="审核结果", choices=[("approve", "批准"), ("reject", "驳回")],
                                 widget=forms.RadioSelect)
    comment = forms.CharField(label="审核意见", required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="驳回时必填")


class ReviewDecisionForm(DecisionForm):
    final_points = forms.DecimalField(label="核定点数", required=False, min_value=0, decimal_places=4,
                                      help_text="批准时必填，替代该病例按规则计算的点数")


class ExitDecisionForm(DecisionForm):
    override = forms.BooleanField(label="超比例特批", required=False,
                                  help_text="批准后该病种退出率超过上限时须勾选并填写理由")
    override_reason = forms.CharField(label="特批理由", required=False, widget=forms.Textarea(attrs={"rows": 3}))


class CaseRequestAdmin(ScopedAdmin):
    """Shared by both requests: add through the service, decide on a page of its own, never edit or delete."""

    add_fields: tuple[str, ...] = ()
    decision_form: type = DecisionForm
    autocomplete_fields = ("case",)
    list_select_related = ("case", "case__institution", "filed_by", "decided_by")
    search_fields = ("=case__serial", "=case__institution__code", "case__institution__name")
    actions = ["decide_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        return [f.name for f in self.model._meta.fields if f.name != "id"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            return form_class
        file_request = self.file_request

        class FilingForm(form_class):
            def clean(self):
                data = super().clean()
                if self.errors:
                    return data
                # The service validates and writes; the admin's transaction undoes it if anything later fails.
                try:
                    self.filed = file_request(request.user, data)
                except requests_services.CaseRequestError as exc:
                    raise ValidationError(str(exc)) from None
                return data

        return FilingForm

    def save_model(self, request, obj, form, change):
        if change:
            return  # decided on the decision page, never edited
        filed = form.filed
        obj.pk, obj.filed_at, obj.filed_by = filed.pk, filed.filed_at, filed.filed_by
        obj._state.adding = False

    def _is_decider(self, request):
        scope = scope_for(request.user)
        return request.user.is_superuser or scope.role in (Role.CITY, Role.COUNTY)

    @admin.display(description="审核")
    def decide_link(self, obj):
        if obj.status != RequestStatus.PENDING:
            return "—"
        return format_html('<a href="{}">审核</a>', reverse(f"admin:{self._decide_url_name()}", args=[obj.pk]))

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        return columns + ["decide_link"] if self._is_decider(request) else columns

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self._is_decider(request):
            actions.pop("decide_selected", None)
        return actions

    @admin.action(description="审核所选申请（批准或驳回）", permissions=["change"])
    def decide_selected(self, request, queryset):
        chosen = list(queryset.values_list("pk", flat=True)[:2])
        if len(chosen) != 1:
            self.message_user(request, "请只选择一件申请进行审核", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse(f"admin:{self._decide_url_name()}", args=[chosen[0]]))

    def _decide_url_name(self):
        return f"{self.opts.app_label}_{self.opts.model_name}_decide"

    def get_urls(self):
        return [
            path("<int:pk>/decide/", self.admin_site.admin_view(self.decide_view), name=self._decide_url_name()),
            *super().get_urls(),
        ]

    def decide_view(self, request, pk):
        if not (self.has_change_permission(request) and self._is_decider(request)):
            raise PermissionDenied
        obj = self.get_queryset(request).filter(pk=pk).first()
        if obj is None:
            raise Http404("对象不存在或不在您的数据范围内")
        form = self.decision_form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                self.decide(request.user, obj, data["decision"] == "approve", data)
            except requests_services.CaseRequestError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"{obj.case}的申请已审核")
                return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        return TemplateResponse(request, "settlement/inpatient/decide.html", {
            **self.admin_site.each_context(request), "title": f"审核{self.opts.verbose_name}：病例{obj.case}",
            "form": form, "obj": obj, "opts": self.opts,
        })


@admin.register(CaseReview)
class CaseReviewAdmin(CaseRequestAdmin):
    list_display = ("case", "institution", "kind", "proposed_points", "status", "final_points", "filed_by",
                    "filed_at", "decided_by")
    list_filter = ("status", "kind")
    add_fields = ("case", "kind", "reason", "proposed_points")
    decision_form = ReviewDecisionForm

    @admin.display(description="机构")
    def institution(self, obj):
        return obj.case.institution

    def file_request(self, user, data):
        return requests_services.file_case_review(
            data["case"], kind=data["kind"], reason=data["reason"], proposed_points=data["proposed_points"], user=user,
        )

    def decide(self, user, obj, approve, data):
        requests_services.decide_case_review(
            obj, approve=approve, final_points=data.get("final_points"), comment=data.get("comment", ""), user=user,
        )


@admin.register(DiseaseExitRequest)
class DiseaseExitRequestAdmin(CaseRequestAdmin):
    list_display = ("case", "institution", "status", "override", "filed_by", "filed_at", "decided_by")
    list_filter = ("status", "override")
    add_fields = ("case", "reason")
    decision_form = ExitDecisionForm

    @admin.display(description="机构")
    def institution(self, obj):
        return obj.case.institution

    def file_request(self, user, data):
        return requests_services.file_exit_request(data["case"], reason=data["reason"], user=user)

    def decide(self, user, obj, approve, data):
        requests_services.decide_exit_request(
            obj, approve=approve, comment=data.get("comment", ""), override=data.get("override", False),
            override_reason=data.get("override_reason", ""), user=user,
        )


# --- bed-day monitoring -------------------------------------------------------------------------


class MonitoringForm(forms.Form):
    year = forms.IntegerField(label="年度", min_value=2000, max_value=2100)
    region = forms.ModelChoiceField(label="县区", queryset=Region.objects.filter(parent__isnull=False), required=False,
                                    help_text="空为全市（县区用户固定为本县区）")


def bed_day_params(year, region_code):
    """The year's bed-day policy caps (the county's before the city's); the defaults without one."""
    policies = PaymentPolicy.objects.filter(scheme=Scheme.BED_DAY, year=year)
    policy = (region_code and policies.filter(region__code=region_code).first()) or policies.filter(region__isnull=True).first()
    return from_json(BedDayParams, policy.parameters) if policy is not None else BedDayParams()


def bed_day_monitoring_view(model_admin, request):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    scope = scope_for(request.user)
    form = MonitoringForm(request.GET or {"year": datetime.date.today().year - 1})
    rows, region_code = [], None
    if form.is_valid():
        year = form.cleaned_data["year"]
        region = form.cleaned_data["region"]
        region_code = region.code if region else None
        if scope.is_regional:
            region_code = next(iter(scope.region_codes))  # a county sees its own county only
        params = bed_day_params(year, region_code)
        rows = bed_day_monitoring(RunContext(Scheme.BED_DAY, year, region_code), params)
        if not scope.sees_all and not scope.is_regional:
            rows = [row for row in rows if row.unit_code in scope.unit_codes]
    return TemplateResponse(request, "settlement/inpatient/bed_day_monitoring.html", {
        **model_admin.admin_site.each_context(request), "title": "床日付费监测", "form": form, "rows": rows,
        "opts": model_admin.opts,
    })


def _extend_bed_day_quota_admin():
    quota_admin = admin.site._registry.get(BedDayQuota)
    if quota_admin is None or getattr(quota_admin, "_monitoring_added", False):
        return
    original = quota_admin.get_urls

    def get_urls():
        view = quota_admin.admin_site.admin_view(lambda request: bed_day_monitoring_view(quota_admin, request))
        return [path("monitoring/", view, name="settlement_beddayquota_monitoring"), *original()]

    quota_admin.get_urls = get_urls
    quota_admin.change_list_template = "settlement/inpatient/bed_day_quota_change_list.html"
    quota_admin._monitoring_added = True


_extend_bed_day_quota_admin()


# --- DRG case derivation on the unit result page ----------------------------------------------


def drg_case_rows(result, page_number):
    """A page of the unit's DRG cases with every factor of their points, or None for other schemes."""
    run = result.run
    if run.scheme != Scheme.DRG:
        return None
    institution = Institution.objects.filter(code=result.unit_code).first()
    if institution is None:
        return None
    ctx = RunContext(run.scheme, run.year, run.region_code)
    try:
        params = from_json(DrgParams, run.parameters)
    except ValidationError:
        return None
    rows = case_derivation(ctx, params, institution.pk, get_rule(Scheme.DRG).approved_points(ctx))
    for row in rows:
        # Incomplete stay: points = min(base', base' × c × cost / 病组均次费用); show the cost ratio.
        average = row.get("average_cost")
        row["incomplete_factor"] = (
            q4(Decimal(row["total_cost"]) / Decimal(average)) if row["incomplete_stay"] and average else None
        )
    return Paginator(rows, CASES_PER_PAGE).get_page(page_number)


admin.site.unregister(UnitResult)


@admin.register(UnitResult)
class InpatientUnitResultAdmin(UnitResultAdmin):
    change_form_template = "settlement/inpatient/unit_result_change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        result = self.get_queryset(request).select_related("run", "run__region").filter(pk=object_id).first() \
            if str(object_id).isdigit() else None
        if result is not None:
            extra_context["drg_cases"] = drg_case_rows(result, request.GET.get("cases_page"))
        return super().change_view(request, object_id, form_url, extra_context)


# --- DRG base-point 测算 -------------------------------------------------------------------------


class CalibrationForm(forms.Form):
    year = forms.IntegerField(label="测算年度", min_value=2000, max_value=2100,
                              help_text="用该年度之前两年出院的病例测算该年度的基准点数")


def _shown_points(post, codes):
    """code → the base points the page showed for it (absent or garbled: None, which adopt refuses)."""
    shown = {}
    for code in codes:
        try:
            shown[code] = Decimal(post.get(f"shown_{code}", ""))
        except ArithmeticError:
            shown[code] = None
    return shown


def _adopted_message(year, summary):
    adopted = summary["updated"] + summary["created"] + summary["unchanged"]
    text = (f"{year}年度已采纳{adopted}个病组的基准点数测算结果：更新{summary['updated']}个、"
            f"新增{summary['created']}个、与现行相同未改动{summary['unchanged']}个")
    if summary["reviewed"]:
        text += f"；其中{summary['reviewed']}个为经复核确认的变异系数超限病组"
    return text


admin.site.unregister(DrgGroup)


@admin.register(DrgGroup)
class DrgGroupCalibrationAdmin(DrgGroupAdmin):
    """The DRG catalogue with its 基准点数测算 page: city and county bureaus and auditors read it, the city
    adopts."""

    change_list_template = "settlement/inpatient/drg_group_change_list.html"

    def may_view_calibration(self, request):
        role = scope_for(request.user).role
        return self.has_view_permission(request) and (request.user.is_superuser or role in (Role.CITY, Role.COUNTY, Role.AUDITOR))

    def may_adopt(self, request):
        role = scope_for(request.user).role
        return self.has_change_permission(request) and (request.user.is_superuser or role == Role.CITY)

    def get_urls(self):
        view = self.admin_site.admin_view(self.calibration_view)
        return [path("calibration/", view, name="settlement_drggroup_calibration"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if self.may_view_calibration(request):
            extra_context["drg_calibration_url"] = reverse("admin:settlement_drggroup_calibration")
        return super().changelist_view(request, extra_context)

    def calibration_view(self, request):
        if not self.may_view_calibration(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        form = CalibrationForm(data if "year" in data else None, initial={"year": datetime.date.today().year})
        chosen = None
        if request.method == "POST" and form.is_valid():
            year = form.cleaned_data["year"]
            codes = request.POST.getlist("codes")
            try:
                summary = drg_calibration.adopt(
                    request.user, year, codes, confirm_cv=bool(request.POST.get("confirm_cv")),
                    expected=_shown_points(request.POST, codes),
                )
            except SettlementError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                chosen = set(codes)
            else:
                self.message_user(request, _adopted_message(year, summary), messages.SUCCESS)
                return redirect(f"{reverse('admin:settlement_drggroup_calibration')}?year={year}")

        context = {
            **self.admin_site.each_context(request), "title": "DRG基准点数测算", "opts": self.opts, "form": form,
            "rows": None, "error": None, "can_adopt": self.may_adopt(request),
            "confirm_cv": chosen is not None and bool(request.POST.get("confirm_cv")),
        }
        if form.is_bound and form.is_valid():
            year = form.cleaned_data["year"]
            try:
                params, policy = drg_calibration.calibration_params(year)
                rows = drg_calibration.preview(year, params)
            except SettlementError as exc:
                context["error"] = str(exc)
            else:
                first, last = drg_calibration.history_years(year)
                context.update(
                    year=year, first_year=first, last_year=last, params=params, policy=policy, rows=rows,
                    settled_runs=drg_calibration.settled_runs(year),
                    flagged=sum(row.cv_exceeded for row in rows),
                    # Unflagged groups start chosen; a group over the CV threshold is chosen only by hand.
                    chosen=chosen if chosen is not None else {row.code for row in rows if not row.cv_exceeded},
                )
        return TemplateResponse(request, "settlement/inpatient/drg_calibration.html", context)
