"""Admin for payment policies, settlement runs and unit results (imported from settlement/admin.py).

Every page goes through ScopedAdmin/`restrict`; every button calls a service (one code path).
"""
import dataclasses
import functools
import typing

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from alliances.formatting import money_column
from alliances.models import Region
from alliances.scope import Role, restrict, scope_for
from alliances.scoped_admin import ScopedAdmin
from settlement.models import ApprovalStatus, CapitationStandard, OutpatientClaim, Scheme, SpecialStandard

from settlement.approval import Refused, revise

from . import services
from .admin_approval import confirmation, confirmed, rows_items, run_totals
from .base import RunContext, SchemeRule, get_rule, policy_schemes
from .display import detail_rows, figure_rows, parameter_rows, pending_recovery, recovery_rows, warning_summary
from .export import export_bytes
from .models import PaymentPolicy, RunStatus, SettlementRun, UnitResult
from .param_forms import initial_text, parameter_field
from .params import defaults_of, field_label, parameter_value
from .policy_services import text_value, updated_parameters
from .presets import PresetError, approve_policy, load_preset, preset_choices
from .standards import approve_capitation_standards, propose_capitation_standards

def claims_link(result):
    """URL of the claims changelist filtered to the claims behind A, or None if the scheme has none."""
    if type(get_rule(result.run.scheme)).claims_for_unit is SchemeRule.claims_for_unit:
        return None  # the scheme did not say which claims make up its A
    return f"{reverse('admin:settlement_outpatientclaim_changelist')}?settlement_unit={result.pk}"


# --- policies --------------------------------------------------------------------------------


SHOWN = "p__shown"  # posted with the parameter fields: unchecked boxes then mean "no", not "not shown"


class PolicyForm(forms.ModelForm):
    """A policy's scheme, year, county and name; `parameters_form(scheme)` adds one field per parameter.

    What the fields hold is checked field by field (a Chinese message under the field) and saved
    through `updated_parameters`, the step behind `policy set`: a value the user left as it was keeps
    its stored form, a changed one is stored exactly as the command line would store it.
    """

    params_class = None

    class Meta:
        model = PaymentPolicy
        fields = ["scheme", "year", "region", "name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.params_class is None:
            return
        if self.is_bound and self.data.get(SHOWN) != "1":
            # Posted from a page without the parameter fields (an add page before the scheme was known):
            # they take their initial values, so the policy starts from the scheme's defaults.
            for name, form_field in self.fields.items():
                if name.startswith("p_"):
                    form_field.disabled = True
        self.hints = typing.get_type_hints(self.params_class)
        # What `policy set` starts from: the stored JSON, or the defaults for a policy not yet saved;
        # a key left out of it shows (and compares as) its default.
        self.base = dict(self.instance.parameters or {}) if self.instance.pk else defaults_of(self.params_class)
        self.stored = {**defaults_of(self.params_class), **self.base}
        self.initial[SHOWN] = "1"
        for field in dataclasses.fields(self.params_class):
            value = self.stored.get(field.name)
            form_field = self.fields[f"p_{field.name}"]
            if isinstance(form_field, forms.CharField):
                value = initial_text(value)
            elif isinstance(form_field, forms.MultipleChoiceField):
                value = list(value or [])
            self.initial[f"p_{field.name}"] = value

    def clean(self):
        cleaned = super().clean()
        if self.params_class is None:
            return cleaned
        changes = {}
        for field in dataclasses.fields(self.params_class):
            key, hint = f"p_{field.name}", self.hints[field.name]
            if key not in cleaned:
                continue  # the field's own check already failed
            value = cleaned[key]
            if isinstance(self.fields[key], forms.CharField):
                value = text_value(hint, value)
            try:
                typed = parameter_value(field, hint, value)
            except ValueError as exc:
                self.add_error(key, f"{field_label(field)}{exc}")
                continue
            try:
                unchanged = field.name in self.stored and typed == parameter_value(field, hint, self.stored[field.name])
            except ValueError:
                unchanged = False
            if not unchanged:
                changes[field.name] = value
        if not self.errors:
            try:
                self.instance.parameters = updated_parameters(self.params_class, self.base, changes)
            except Refused as exc:
                self.add_error(None, str(exc))
        return cleaned


@functools.lru_cache(maxsize=None)
def parameters_form(scheme):
    """PolicyForm with one declared field per parameter of the scheme's schema (`p_<name>`)."""
    params_class = get_rule(scheme).params_class
    hints = typing.get_type_hints(params_class)
    defaults = defaults_of(params_class)
    attrs = {"params_class": params_class, SHOWN: forms.CharField(widget=forms.HiddenInput, required=False)}
    for field in dataclasses.fields(params_class):
        attrs[f"p_{field.name}"] = parameter_field(field, hints[field.name], defaults.get(field.name))
    return type(f"PolicyForm_{scheme}", (PolicyForm,), attrs)


class PresetForm(forms.Form):
    city = forms.ChoiceField(label="城市预设", choices=preset_choices)
    year = forms.IntegerField(label="年度", min_value=2000, max_value=2100)
    region = forms.ModelChoiceField(label="县区", queryset=Region.objects.all(), required=False, help_text="空为全市")
    approve = forms.BooleanField(label="加载后直接审批", required=False)


@admin.register(PaymentPolicy)
class PaymentPolicyAdmin(ScopedAdmin):
    form = PolicyForm
    list_display = ("year", "scheme", "region", "name", "version", "status", "approved_by", "approved_at")
    list_filter = ("scheme", "year", "status")
    search_fields = ("name",)
    readonly_fields = ("status", "approved_by", "approved_at")
    MAIN_FIELDS = ("scheme", "year", "region", "name", "version", "status", "approved_by", "approved_at")
    actions = ["approve_selected", "revise_selected", "propose_standards"]
    change_list_template = "settlement/admin/policy_change_list.html"

    def _editable(self, request, obj):
        return obj is None or self.has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if not self._editable(request, obj):
            # An approved policy (or one out of write scope) is a record to read: its parameters
            # by their Chinese labels, never as JSON.
            return [f.name for f in PaymentPolicy._meta.fields if f.name != "parameters"] + ["parameter_table"]
        # A policy's scheme is what its parameters are: fixed once the policy exists.
        return self.readonly_fields + (("scheme",) if obj is not None else ())

    def get_fields(self, request, obj=None):
        if not self._editable(request, obj):
            return ["scheme", "year", "region", "name", "version", "status", "approved_by", "approved_at",
                    "parameter_table"]
        return super().get_fields(request, obj)

    def get_fieldsets(self, request, obj=None):
        fields = self.get_fields(request, obj)
        parameters = [f for f in fields if f.startswith("p_")]
        main = [f for f in self.MAIN_FIELDS if f in fields] + [
            f for f in fields if f not in self.MAIN_FIELDS and not f.startswith("p_")]
        if not parameters:
            return [(None, {"fields": main})]
        return [(None, {"fields": main}), ("政策参数", {"fields": parameters})]

    def get_form(self, request, obj=None, change=False, **kwargs):
        scheme = obj.scheme if obj is not None else (request.POST.get("scheme") or request.GET.get("scheme"))
        if scheme in policy_schemes() and self._editable(request, obj):
            kwargs["form"] = parameters_form(scheme)
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="政策参数")
    def parameter_table(self, obj):
        return render_to_string("settlement/parameter_table.html", {"rows": parameter_rows(obj.scheme, obj.parameters)})

    @admin.action(description="审批所选支付政策", permissions=["approve"])
    def approve_selected(self, request, queryset):
        if not confirmed(request):
            return confirmation(self, request, "确认审批支付政策", rows_items(queryset.filter(status=ApprovalStatus.DRAFT)),
                                action="approve_selected", selected=queryset.values_list("pk", flat=True))
        for policy in queryset:
            try:
                approve_policy(policy, request.user)
            except services.SettlementError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return
        self.message_user(request, f"已审批{queryset.count()}项支付政策")

    @admin.action(description="为所选已审批政策建立新版本（修订草稿）", permissions=["approve"])
    def revise_selected(self, request, queryset):
        revise_each(self, request, queryset)

    @admin.action(description="按所选年度测算门诊人头标准（生成草稿）", permissions=["change"])
    def propose_standards(self, request, queryset):
        for year in sorted(set(queryset.filter(scheme=Scheme.CAPITATION).values_list("year", flat=True))):
            try:
                summary = propose_capitation_standards(year, user=request.user)
            except services.SettlementError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request,
                f"{year}年度人头标准测算完成：新增{summary['created']}项、更新草稿{summary['updated']}项、"
                f"保留已审批{summary['kept_approved']}项，请核对后审批",
            )

    def get_urls(self):
        return [
            path("load-preset/", self.admin_site.admin_view(self.load_preset_view), name="settlement_paymentpolicy_preset"),
            *super().get_urls(),
        ]

    def load_preset_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PresetForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                if data["approve"]:
                    services._require(request.user, roles={"city"}, action="审批支付政策")
                report = load_preset(dict(preset_choices())[data["city"]], data["year"], data["region"],
                                     request.user, approve=data["approve"])
            except (PresetError, services.SettlementError) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                for line in report:
                    self.message_user(request, line)
                return HttpResponseRedirect(reverse("admin:settlement_paymentpolicy_changelist"))
        return TemplateResponse(request, "settlement/admin/form.html", {
            **self.admin_site.each_context(request), "title": "加载城市政策预设", "form": form,
            "opts": self.model._meta, "submit": "加载",
        })


# --- runs ------------------------------------------------------------------------------------


class StartRunForm(forms.Form):
    scheme = forms.ChoiceField(label="支付方案", choices=Scheme.choices)
    year = forms.IntegerField(label="年度", min_value=2000, max_value=2100)
    region = forms.ModelChoiceField(label="县区", queryset=Region.objects.all(), required=False, help_text="空为全市")


MONEY_COLUMNS = (
    ("quota", "预算额度"), ("actual", "实际支出"), ("surplus", "结余超支"), ("unit_part", "单位分担留用"),
    ("fund_part", "基金分担留用"), ("entitled", "应得金额"), ("paid", "已拨付"), ("recovery", "违规扣款"),
    ("amount", "年终清算金额"),
)


class MoneyColumns:
    """`quota_money` … `amount_money`: the result figures as money (alliances/formatting.py)."""

    locals().update({f"{name}_money": money_column(name, label) for name, label in MONEY_COLUMNS})


MONEY_FIELDS = tuple(f"{name}_money" for name, _label in MONEY_COLUMNS)


class UnitResultInline(MoneyColumns, admin.TabularInline):
    model = UnitResult
    extra = 0
    can_delete = False
    show_change_link = False  # the unit's name links to its page; Django's 查看 link would be a second one
    fields = ("unit_link", "quota_money", "actual_money", "surplus_money", "entitled_money", "paid_money",
              "recovery_money", "amount_money", "statement_link")
    readonly_fields = fields
    max_num = 0

    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="结算单位")
    def unit_link(self, obj):
        return format_html('<a href="{}">{}</a><br><span class="unit-code">{}</span>',
                           reverse("admin:settlement_unitresult_change", args=[obj.pk]), obj.unit_name, obj.unit_code)

    @admin.display(description="清算单")
    def statement_link(self, obj):
        return statement_link(obj)


def statement_link(result):
    return format_html('<a class="statement-link" href="{}" target="_blank">打印</a>',
                       reverse("admin:settlement_unitresult_statement", args=[result.pk]))


def _allowed(check):
    """Whether a service's own permission check lets the user through (the button follows the service)."""
    try:
        check()
    except services.SettlementError:
        return False
    return True


def run_actions(run, user):
    """The buttons of a run's own page: what its state allows and the user may do, in working order.

    Each is (key, label, url, method); the permission is the service's own `_require`, so a button
    is shown exactly when pressing it would not be refused for who the user is.
    """
    def may(roles, action):
        return _allowed(lambda: services._require(user, roles=roles, region_code=run.region_code, action=action))

    computes = may({Role.CITY, Role.COUNTY}, "发起结算")
    actions = []
    if computes and run.status != RunStatus.COMPUTING:
        label = {RunStatus.DRAFT: "计算", RunStatus.FAILED: "重新计算", RunStatus.COMPUTED: "重新计算"}.get(
            run.status, "重算（生成新版本）")
        actions.append(("compute", label, reverse("admin:settlement_settlementrun_act", args=[run.pk, "compute"]), "post"))
    if computes and run.status in (RunStatus.COMPUTING, RunStatus.FAILED):
        actions.append(("resume", "继续计算", reverse("admin:settlement_settlementrun_act", args=[run.pk, "resume"]), "post"))
    # Four eyes: whoever started the computation is not offered the approval (services.approve_run refuses it).
    if run.status == RunStatus.COMPUTED and may({Role.CITY}, "审核结算") and run.created_by_id != user.pk:
        actions.append(("approve", "审核", reverse("admin:settlement_settlementrun_approve", args=[run.pk]), "get"))
    if run.status == RunStatus.APPROVED and may({Role.CITY}, "确认拨付"):
        actions.append(("pay", "确认已拨付", reverse("admin:settlement_settlementrun_act", args=[run.pk, "pay"]), "post"))
    if run.status in (RunStatus.COMPUTED, RunStatus.APPROVED, RunStatus.PAID):
        actions.append(("export", "导出（xlsx）", reverse("admin:settlement_settlementrun_export", args=[run.pk]), "get"))
    actions.append(("print", "打印", "", "print"))
    return actions


def export_response(run, user):
    name = f"settlement-{run.scheme}-{run.year}-v{run.version}.xlsx"
    response = HttpResponse(
        export_bytes(run, "xlsx", user=user, file_name=name),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@admin.register(SettlementRun)
class SettlementRunAdmin(ScopedAdmin):
    list_display = ("run_name", "status", "progress_bar", "finished_at", "approved_by")
    list_filter = ("scheme", "year", "status")
    list_select_related = ("region", "approved_by")
    inlines = [UnitResultInline]
    actions = ["compute", "resume", "approve", "pay", "export_xlsx"]
    change_list_template = "settlement/admin/run_change_list.html"
    change_form_template = "settlement/admin/run_change_form.html"
    fieldsets = [
        (None, {"fields": ("scheme", "year", "region", "version", "status", "progress_bar", "failure_reason")}),
        ("政策", {"fields": ("policy", "parameter_table")}),
        ("过程", {"fields": ("job", "created_by", "created_at", "started_at", "finished_at", "approved_by", "approved_at", "paid_at")}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in SettlementRun._meta.fields] + ["progress_bar", "parameter_table"]

    def has_add_permission(self, request):
        return False  # runs start through the 新建结算 page, which calls the service

    def has_change_permission(self, request, obj=None):
        # A run has no form: every figure is the computation's, every step a button calling a service.
        # Without an object (the list's actions) the ordinary permission applies.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="结算批次", ordering="-year")
    def run_name(self, obj):
        return format_html('<span class="run-name">{}</span>', str(obj))

    @admin.display(description="进度")
    def progress_bar(self, obj):
        if obj.status == RunStatus.FAILED:
            # A failed run did not finish: its bar shows how far it got, never a full bar.
            return format_html('<progress max="100" value="{}" style="width:8em"></progress> 失败（{}/{}）',
                               obj.percent if obj.units_done < obj.units_total else 0, obj.units_done, obj.units_total)
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}%（{}/{}）',
            obj.percent, obj.percent, obj.units_done, obj.units_total,
        )

    @admin.display(description="政策参数快照")
    def parameter_table(self, obj):
        return render_to_string("settlement/parameter_table.html", {"rows": parameter_rows(obj.scheme, obj.parameters)})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if run is not None:
            extra_context.update({
                "run_actions": run_actions(run, request.user),
                "warning_groups": warning_summary(services.visible_warnings(run, request.user)),
                "show_save": False, "show_save_and_continue": False, "show_delete": False,
            })
        return super().change_view(request, object_id, form_url, extra_context)

    def get_actions(self, request):
        # The list offers only what the services would let this user do (no 计算 for a hospital).
        actions = super().get_actions(request)
        if not _allowed(lambda: services._require(request.user, roles={Role.CITY, Role.COUNTY},
                                                  region_code=_own_region(request.user), action="发起结算")):
            actions.pop("compute", None)
            actions.pop("resume", None)
        return actions

    def _each(self, request, queryset, call, done):
        ok = 0
        for run in queryset:
            try:
                call(run)
                ok += 1
            except services.SettlementError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if ok:
            self.message_user(request, done.format(ok))

    @admin.action(description="计算（重算草稿，已审核的生成新版本）", permissions=["change"])
    def compute(self, request, queryset):
        self._each(request, queryset,
                   lambda r: services.start_run(r.scheme, r.year, r.region_code, user=request.user),
                   "已提交{}个结算批次的计算")

    @admin.action(description="继续未完成的计算", permissions=["change"])
    def resume(self, request, queryset):
        self._each(request, queryset, lambda r: services.resume_run(r, user=request.user), "已继续{}个结算批次")

    @admin.action(description="审核", permissions=["approve"])
    def approve(self, request, queryset):
        if not confirmed(request):
            return confirmation(self, request, "确认审核结算批次", [run_totals(r) for r in queryset.order_by("pk")],
                                action="approve", selected=queryset.values_list("pk", flat=True))
        self._each(request, queryset, lambda r: services.approve_run(r, user=request.user), "已审核{}个结算批次")

    def approve_view(self, request, object_id):
        """审核 one run: GET shows the totals being approved, POST approves (the run page's 审核 button)."""
        if not self.has_approve_permission(request):
            raise PermissionDenied
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404("结算批次不存在或不在您的数据范围内")
        change_url = reverse("admin:settlement_settlementrun_change", args=[run.pk])
        if confirmed(request):
            try:
                services.approve_run(run, user=request.user)
            except services.SettlementError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{run}已审核")
            return HttpResponseRedirect(change_url)
        return confirmation(self, request, f"确认审核：{run}", [run_totals(run)],
                            action_url=request.path, cancel_url=change_url)

    @admin.action(description="确认已拨付", permissions=["approve"])
    def pay(self, request, queryset):
        self._each(request, queryset, lambda r: services.mark_paid(r, user=request.user), "已确认{}个结算批次拨付")

    @admin.action(description="导出结算结果（xlsx）")
    def export_xlsx(self, request, queryset):
        runs = list(queryset[:2])
        if len(runs) != 1:
            self.message_user(request, "请只选择一个结算批次导出", messages.ERROR)
            return None
        run = runs[0]
        if run.status not in (RunStatus.COMPUTED, RunStatus.APPROVED, RunStatus.PAID):
            self.message_user(request, f"{run}尚未计算完成，不能导出", messages.ERROR)
            return None
        return export_response(run, request.user)

    def get_urls(self):
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="settlement_settlementrun_start"),
            path("<int:pk>/act/<str:action>/", self.admin_site.admin_view(require_POST(self.act_view)),
                 name="settlement_settlementrun_act"),
            path("<int:pk>/export/", self.admin_site.admin_view(self.export_view), name="settlement_settlementrun_export"),
            path("<path:object_id>/approve/", self.admin_site.admin_view(self.approve_view),
                 name="settlement_settlementrun_approve"),
            *super().get_urls(),
        ]

    def _run_in_scope(self, request, pk):
        run = self.get_queryset(request).filter(pk=pk).first()
        if run is None:
            raise Http404("对象不存在或不在您的数据范围内")
        return run

    def act_view(self, request, pk, action):
        """The run page's buttons: the same services as the list's actions (one code path)."""
        run = self._run_in_scope(request, pk)
        calls = {
            "compute": (lambda: services.start_run(run.scheme, run.year, run.region_code, user=request.user),
                        "{}已提交计算"),
            "resume": (lambda: services.resume_run(run, user=request.user), "{}已继续计算"),
            "pay": (lambda: services.mark_paid(run, user=request.user), "{}已确认拨付"),
        }
        if action not in calls:
            raise Http404("没有这个操作")
        call, done = calls[action]
        try:
            result = call()
        except services.SettlementError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlement_settlementrun_change", args=[run.pk]))
        target = result if isinstance(result, SettlementRun) else run
        self.message_user(request, done.format(target))
        return HttpResponseRedirect(reverse("admin:settlement_settlementrun_change", args=[target.pk]))

    def export_view(self, request, pk):
        run = self._run_in_scope(request, pk)
        if run.status not in (RunStatus.COMPUTED, RunStatus.APPROVED, RunStatus.PAID):
            self.message_user(request, f"{run}尚未计算完成，不能导出", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlement_settlementrun_change", args=[run.pk]))
        return export_response(run, request.user)

    def start_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = StartRunForm(request.POST or None, initial={"year": latest_data_year()})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            region = data["region"].code if data["region"] else None
            try:
                run = services.start_run(data["scheme"], data["year"], region, user=request.user)
            except services.SettlementError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{run}已提交计算")
                return HttpResponseRedirect(reverse("admin:settlement_settlementrun_change", args=[run.pk]))
        return TemplateResponse(request, "settlement/admin/form.html", {
            **self.admin_site.each_context(request), "title": "新建结算", "form": form,
            "opts": self.model._meta, "submit": "开始计算",
        })

    def changelist_view(self, request, extra_context=None):
        extra_context = {"can_start": _allowed(lambda: services._require(
            request.user, roles={Role.CITY, Role.COUNTY}, region_code=_own_region(request.user), action="发起结算")),
            **(extra_context or {})}
        return super().changelist_view(request, extra_context)


def _own_region(user):
    """The county a county user starts runs for (None for city-wide users)."""
    codes = sorted(scope_for(user).region_codes or ())
    return codes[0] if codes else None


def latest_data_year():
    """The 新建结算 form's year: the latest year with claims (the year a clerk settles), else last year."""
    latest = OutpatientClaim.objects.order_by("-visit_date").values_list("visit_date", flat=True).first()
    return latest.year if latest else timezone.localdate().year - 1


# --- unit results ----------------------------------------------------------------------------


@admin.register(UnitResult)
class UnitResultAdmin(MoneyColumns, ScopedAdmin):
    # Fits 1,366 px beside the filters: the unit and its run in one cell, the money that decides the
    # year-end amount always in view (S, the unit's and the fund's parts are on the unit's page).
    list_display = ("unit_cell", "quota_money", "actual_money", "entitled_money", "paid_money", "recovery_money",
                    "amount_money", "statement_link")
    list_filter = ("run__scheme", "run__year", "run__status")
    search_fields = ("unit_code", "unit_name")
    list_select_related = ("run", "run__region")
    change_form_template = "settlement/admin/unit_result_change_form.html"
    fieldsets = [
        (None, {"fields": ("run", "unit_code", "unit_name")}),
        ("结算金额", {"fields": ("figures_table",)}),
        ("计算明细", {"fields": ("details_table", "computed_at")}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in UnitResult._meta.fields] + ["figures_table", "details_table"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Every figure is the run's computation: the page is for reading, without 保存.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="结算单位 / 结算批次", ordering="unit_code")
    def unit_cell(self, obj):
        return format_html('<a href="{}">{}</a> <span class="unit-code">{}</span><br><span class="run-name">{}</span>',
                           reverse("admin:settlement_unitresult_change", args=[obj.pk]), obj.unit_name or obj.unit_code,
                           obj.unit_code, str(obj.run))

    @admin.display(description="结算金额")
    def figures_table(self, obj):
        return render_to_string("settlement/unit_figures.html", {
            "figures": figure_rows(obj), "claims_link": claims_link(obj),
        }) + render_to_string("settlement/unit_recoveries.html", {
            "recovery_rows": recovery_rows(obj), "pending": pending_recovery(obj),
        })

    @admin.display(description="计算明细")
    def details_table(self, obj):
        return render_to_string("settlement/unit_details.html", {"rows": detail_rows(obj)})

    @admin.display(description="清算单")
    def statement_link(self, obj):
        return statement_link(obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        result = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if result is not None:
            extra_context.update({
                "statement_url": reverse("admin:settlement_unitresult_statement", args=[result.pk]),
                "warning_groups": warning_summary(result.warnings),  # the unit's own: in scope with the unit
                "show_save": False, "show_save_and_continue": False, "show_delete": False,
            })
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path("<int:pk>/statement/", self.admin_site.admin_view(self.statement_view),
                 name="settlement_unitresult_statement"),
            *super().get_urls(),
        ]

    def statement_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        result = self.get_queryset(request).select_related("run", "run__region", "run__approved_by").filter(pk=pk).first()
        if result is None:
            raise Http404("对象不存在或不在您的数据范围内")
        return TemplateResponse(request, "settlement/statement.html", {
            "result": result, "run": result.run, "figures": figure_rows(result),
            "rows": detail_rows(result), "printed_by": request.user,
            "recovery_rows": recovery_rows(result), "pending": pending_recovery(result),
            "warning_groups": warning_summary(result.warnings),  # the unit's own: in scope with the unit
        })


def _extend_registered_admins():
    """Add the standards' approval to admins registered in settlement/admin.py."""
    for model in (CapitationStandard, SpecialStandard):
        standard_admin = admin.site._registry.get(model)
        if standard_admin is not None:
            standard_admin.actions = [*(standard_admin.actions or []), approve_standards, revise_standards]


@admin.action(description="审批所选人头标准", permissions=["approve"])
def approve_standards(modeladmin, request, queryset):
    if not confirmed(request):
        return confirmation(modeladmin, request, "确认审批人头标准",
                            rows_items(queryset.filter(status=ApprovalStatus.DRAFT).order_by("pk")),
                            action="approve_standards", selected=queryset.values_list("pk", flat=True))
    try:
        count = approve_capitation_standards(queryset, user=request.user)
    except services.SettlementError as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return
    modeladmin.message_user(request, f"已审批{count}项人头标准")


def revise_each(modeladmin, request, queryset):
    revised = []
    for row in queryset.order_by("pk"):
        try:
            revised.append(revise(row, request.user, draft=ApprovalStatus.DRAFT, approved=ApprovalStatus.APPROVED,
                                  what="建立新版本"))
        except Refused as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
    if revised:
        modeladmin.message_user(
            request, f"已为{len(revised)}项建立新版本草稿；修改后请重新审批，审批前不能用于结算", messages.WARNING,
        )


@admin.action(description="为所选已审批标准建立新版本（修订草稿）", permissions=["approve"])
def revise_standards(modeladmin, request, queryset):
    revise_each(modeladmin, request, queryset)


_extend_registered_admins()
from . import admin_prepayment  # noqa: E402,F401  (月度预拨 page on the settlement-run list)
from . import admin_inpatient  # noqa: E402,F401  (inpatient requests, bed-day monitoring, DRG case derivation)
from . import admin_simulation  # noqa: E402,F401  (政策模拟 pages, SPEC §11)
