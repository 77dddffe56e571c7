"""Admin for payment policies, settlement runs and unit results (imported from settlement/admin.py).

Every page goes through ScopedAdmin/`restrict`; every button calls a service (one code path).
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from alliances.models import Region
from alliances.scope import restrict
from alliances.scoped_admin import ScopedAdmin
from settlement.models import ApprovalStatus, CapitationStandard, OutpatientClaim, Scheme, SpecialStandard

from settlement.approval import Refused, revise

from . import services
from .base import RunContext, SchemeRule, get_rule, params_class_of
from .export import export_bytes
from .models import PaymentPolicy, RunStatus, SettlementRun, UnitResult
from .params import field_label, from_json
from .presets import PresetError, approve_policy, load_preset, preset_choices
from .standards import approve_capitation_standards, propose_capitation_standards

# Labels of the intermediates every scheme may store; a scheme adds its own via `detail_labels`.
DETAIL_LABELS = {
    "heads": "人头数",
    "person_months": "人·月数",
    "payments": "拨付记录合计（元）",
}
COLUMN_LABELS = {
    "insurance_type": "险种", "age_band": "年龄段", "heads": "人头数", "person_months": "人·月",
    "counted_person_months": "计入人·月", "standard": "标准（元/人·年）", "quota": "额度（元）",
    "disease_code": "病种编码", "disease_name": "病种名称",
}
FIGURES = [
    ("quota", "预算额度（Q）"), ("actual", "实际支出（A）"), ("surplus", "结余超支（S = Q − A）"),
    ("unit_part", "单位分担留用"), ("fund_part", "基金分担留用"), ("entitled", "应得金额（E）"),
    ("paid", "已拨付"), ("amount", "年终清算金额（E − 已拨付）"),
]


def detail_rows(result):
    """(label, value or table) for every stored intermediate of a unit result, in Chinese."""
    labels = {**DETAIL_LABELS, **getattr(get_rule(result.run.scheme), "detail_labels", {})}
    rows = []
    for key, value in (result.details or {}).items():
        label = labels.get(key, key)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            columns = list(value[0])
            rows.append({"label": label, "table": {
                "headers": [COLUMN_LABELS.get(c, c) for c in columns],
                "rows": [[row.get(c) if row.get(c) is not None else "—" for c in columns] for row in value],
            }})
        elif isinstance(value, list):
            rows.append({"label": label, "value": "、".join(map(str, value)) or "—"})
        else:
            rows.append({"label": label, "value": value if value not in (None, "") else "—"})
    return rows


def claims_link(result):
    """URL of the claims changelist filtered to the claims behind A, or None if the scheme has none."""
    if type(get_rule(result.run.scheme)).claims_for_unit is SchemeRule.claims_for_unit:
        return None  # the scheme did not say which claims make up its A
    return f"{reverse('admin:settlement_outpatientclaim_changelist')}?settlement_unit={result.pk}"


# --- policies --------------------------------------------------------------------------------


class PolicyForm(forms.ModelForm):
    class Meta:
        model = PaymentPolicy
        fields = ["scheme", "year", "region", "name", "parameters"]
        widgets = {"parameters": forms.Textarea(attrs={"rows": 12, "cols": 80})}


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
    readonly_fields = ("status", "approved_by", "approved_at", "parameter_help")
    actions = ["approve_selected", "revise_selected", "propose_standards"]
    change_list_template = "settlement/admin/policy_change_list.html"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == ApprovalStatus.APPROVED:
            # An approved policy is a record of what was decided; edit a new one instead.
            return [f.name for f in PaymentPolicy._meta.fields] + ["parameter_help"]
        return self.readonly_fields

    @admin.display(description="参数说明")
    def parameter_help(self, obj):
        if obj is None or not obj.scheme:
            return "—"
        import dataclasses

        rows = []
        for field in dataclasses.fields(params_class_of(obj.scheme)):
            meta = field.metadata
            bounds = []
            if meta.get("min") is not None:
                bounds.append(f"≥{meta['min']}")
            if meta.get("max") is not None:
                bounds.append(f"≤{meta['max']}")
            if meta.get("choices"):
                bounds.append("可选：" + "、".join(map(str, meta["choices"])))
            rows.append(format_html("<li><code>{}</code>：{} {}</li>", field.name, field_label(field), "，".join(bounds)))
        return format_html("<ul>{}</ul>", mark_safe("".join(rows)))

    @admin.action(description="审批所选支付政策", permissions=["approve"])
    def approve_selected(self, request, queryset):
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


class UnitResultInline(admin.TabularInline):
    model = UnitResult
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("unit_code", "unit_name", "quota", "actual", "surplus", "unit_part", "fund_part", "entitled", "paid", "amount")
    readonly_fields = fields
    max_num = 0

    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SettlementRun)
class SettlementRunAdmin(ScopedAdmin):
    list_display = ("__str__", "scheme", "year", "region", "version", "status", "progress_bar", "started_at",
                    "finished_at", "approved_by")
    list_filter = ("scheme", "year", "status")
    list_select_related = ("region", "approved_by")
    inlines = [UnitResultInline]
    actions = ["compute", "resume", "approve", "pay", "export_xlsx"]
    change_list_template = "settlement/admin/run_change_list.html"
    fieldsets = [
        (None, {"fields": ("scheme", "year", "region", "version", "status", "progress_bar", "failure_reason", "warning_list")}),
        ("政策", {"fields": ("policy", "parameters")}),
        ("过程", {"fields": ("job", "created_by", "created_at", "started_at", "finished_at", "approved_by", "approved_at", "paid_at")}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in SettlementRun._meta.fields] + ["progress_bar", "warning_list"]

    def has_add_permission(self, request):
        return False  # runs start through the 新建结算 page, which calls the service

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="进度")
    def progress_bar(self, obj):
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}%（{}/{}）',
            obj.percent, obj.percent, obj.units_done, obj.units_total,
        )

    def get_object(self, request, object_id, from_field=None):
        run = super().get_object(request, object_id, from_field)
        if run is not None:
            run.viewer = request.user  # the warnings shown depend on who looks (`visible_warnings`)
        return run

    @admin.display(description="提示")
    def warning_list(self, obj):
        warnings = services.visible_warnings(obj, getattr(obj, "viewer", None))
        if not warnings:
            return "—"
        return format_html("<ul>{}</ul>", mark_safe("".join(format_html("<li>{}</li>", w) for w in warnings)))

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
        self._each(request, queryset, lambda r: services.approve_run(r, user=request.user), "已审核{}个结算批次")

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
        response = HttpResponse(
            export_bytes(run, "xlsx", user=request.user),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        response["Content-Disposition"] = f'attachment; filename="settlement-{run.scheme}-{run.year}-v{run.version}.xlsx"'
        return response

    def get_urls(self):
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="settlement_settlementrun_start"),
            *super().get_urls(),
        ]

    def start_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = StartRunForm(request.POST or None)
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


# --- unit results ----------------------------------------------------------------------------


@admin.register(UnitResult)
class UnitResultAdmin(ScopedAdmin):
    list_display = ("unit_code", "unit_name", "run", "quota", "actual", "surplus", "unit_part", "fund_part",
                    "entitled", "paid", "amount", "statement_link")
    list_filter = ("run__scheme", "run__year", "run__status")
    search_fields = ("unit_code", "unit_name")
    list_select_related = ("run", "run__region")
    fieldsets = [
        (None, {"fields": ("run", "unit_code", "unit_name")}),
        ("结算金额", {"fields": ("quota", "actual_with_link", "surplus", "unit_part", "fund_part", "entitled", "paid", "amount")}),
        ("计算明细", {"fields": ("details_table", "warning_list", "computed_at")}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in UnitResult._meta.fields] + ["actual_with_link", "details_table", "warning_list"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="实际支出（A）")
    def actual_with_link(self, obj):
        link = claims_link(obj)
        if not link:
            return obj.actual
        return format_html('{} <a href="{}">查看构成A的结算记录</a>', obj.actual, link)

    @admin.display(description="计算明细")
    def details_table(self, obj):
        return render_to_string("settlement/unit_details.html", {"rows": detail_rows(obj)})

    def get_object(self, request, object_id, from_field=None):
        run = super().get_object(request, object_id, from_field)
        if run is not None:
            run.viewer = request.user  # the warnings shown depend on who looks (`visible_warnings`)
        return run

    @admin.display(description="提示")
    def warning_list(self, obj):
        warnings = services.visible_warnings(obj, getattr(obj, "viewer", None))
        if not warnings:
            return "—"
        return format_html("<ul>{}</ul>", mark_safe("".join(format_html("<li>{}</li>", w) for w in warnings)))

    @admin.display(description="清算单")
    def statement_link(self, obj):
        return format_html('<a href="{}" target="_blank">打印</a>',
                           reverse("admin:settlement_unitresult_statement", args=[obj.pk]))

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
            "result": result, "run": result.run,
            "figures": [(label, getattr(result, name)) for name, label in FIGURES],
            "rows": detail_rows(result), "printed_by": request.user,
        })


# --- drill-down from A to its claims ----------------------------------------------------------


class SettlementUnitFilter(admin.SimpleListFilter):
    """`?settlement_unit=<UnitResult id>`: the claims behind that unit's A (only when in scope)."""

    title = "结算单位"
    parameter_name = "settlement_unit"

    def lookups(self, request, model_admin):
        value = self.value()
        if not value or not value.isdigit():
            return []
        result = restrict(UnitResult.objects.select_related("run"), request.user).filter(pk=value).first()
        return [(value, f"{result.unit_name or result.unit_code}（{result.run}）")] if result else [(value, "无权查看")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        result = None
        if value.isdigit():
            result = restrict(UnitResult.objects.select_related("run", "run__region"), request.user).filter(pk=value).first()
        if result is None:
            return queryset.none()
        run = result.run
        rule = get_rule(run.scheme)
        try:
            params = from_json(rule.params_class, run.parameters)
        except ValidationError:
            return queryset.none()
        claims = rule.claims_for_unit(RunContext(run.scheme, run.year, run.region_code), params, result.unit_code)
        if claims is None:
            return queryset.none()
        return queryset.filter(pk__in=claims.values("pk"))


def _extend_registered_admins():
    """Add the drill-down filter and the standards' approval to admins registered in settlement/admin.py."""
    claim_admin = admin.site._registry.get(OutpatientClaim)
    if claim_admin is not None and SettlementUnitFilter not in claim_admin.list_filter:
        claim_admin.list_filter = (*claim_admin.list_filter, SettlementUnitFilter)
    for model in (CapitationStandard, SpecialStandard):
        standard_admin = admin.site._registry.get(model)
        if standard_admin is not None:
            standard_admin.actions = [*(standard_admin.actions or []), approve_standards, revise_standards]


@admin.action(description="审批所选人头标准", permissions=["approve"])
def approve_standards(modeladmin, request, queryset):
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
