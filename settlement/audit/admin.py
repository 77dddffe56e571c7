"""Admin for audit findings (SPEC §9): a scoped changelist, a page per finding with its evidence and
links, appeal and decision forms, bulk review, and running the audit as a background job."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from alliances.formatting import money
from alliances.models import Institution, Region
from alliances.scope import Role, restrict, scope_for
from alliances.scoped_admin import ScopedAdmin
from settlement.engine.case_requests import ReviewKind
from settlement.models import InpatientCase, OutpatientClaim

from . import recovery, services
from .models import Finding, FindingStatus, FindingStep
from .rules import registered_rules
from .selectors import counts_by_rule_and_institution, standalone_by_institution
from .rules.inpatient import HighMultipleCase

REASON = forms.CharField(label="理由", widget=forms.Textarea(attrs={"rows": 4}), max_length=2000)


class RunAuditForm(forms.Form):
    year = forms.IntegerField(label="年度", min_value=2000, max_value=2100)
    region = forms.ModelChoiceField(label="县区", queryset=Region.objects.none(), required=False, help_text="空为全市")
    rules = forms.MultipleChoiceField(label="规则", required=False, widget=forms.CheckboxSelectMultiple,
                                      help_text="不选为全部规则")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].queryset = restrict(Region.objects.filter(parent__isnull=False), user)
        self.fields["rules"].choices = [(code, f"{code} {rule.name}") for code, rule in registered_rules().items()]


class StandaloneForm(forms.Form):
    """The stand-alone recoveries page's query: ?year=YYYY[&institution=机构编码]."""

    year = forms.IntegerField(label="年度", min_value=2000, max_value=2100, error_messages={
        "required": "请指定年度（如 ?year=2025）", "invalid": "年度参数无效：请填写四位数字年度，如2025",
        "min_value": "年度参数无效：年度应在2000至2100之间", "max_value": "年度参数无效：年度应在2000至2100之间",
    })
    institution = forms.CharField(label="机构编码", required=False, max_length=40)


def _money_cells(totals):
    return {"amount": money(totals.amount), "deducted": money(totals.deducted), "rest": money(totals.rest)}


class AppealForm(forms.Form):
    reason = REASON
    attachment = forms.FileField(label="附件", required=False)


class DecideForm(forms.Form):
    decision = forms.ChoiceField(label="认定", choices=[("confirm", "已确认违规"), ("dismiss", "已排除")])
    reason = REASON


class FindingStepInline(admin.TabularInline):
    model = FindingStep
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("at", "from_status", "to_status", "user", "reason", "attachment")
    readonly_fields = fields


def _link(obj, label=None):
    if obj is None:
        return "—"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or obj)


class RecoveryFilter(admin.SimpleListFilter):
    """违规扣款 (SPEC §9): deducted in the current version of a settlement, or recovered on its own."""

    title = "违规扣款"
    parameter_name = "recovery"

    def lookups(self, request, model_admin):
        # A split finding partly deducted is in both: its deducted shares and the rest recovered on its own.
        return [("deducted", "已在结算中扣款（全部或部分）"), ("standalone", "单独追回（未在结算中全额扣回）")]

    def queryset(self, request, queryset):
        if self.value() == "deducted":
            return queryset.filter(recovery.deducted_in_a_current_run())
        if self.value() == "standalone":
            return recovery.standalone_of(queryset)
        return queryset


@admin.register(Finding)
class FindingAdmin(ScopedAdmin):
    list_display = ("year", "rule", "rule_name", "severity", "institution", "person", "document", "amount", "status")
    list_filter = ("year", "rule", "severity", "status", RecoveryFilter,
                   ("institution", admin.RelatedOnlyFieldListFilter))
    search_fields = ("subject", "institution__code", "person__id_number", "claim__serial", "case__serial")
    list_select_related = ("institution", "person", "claim", "case")
    fields = ("year", "rule", "rule_name", "severity", "status", "amount", "evidence", "behind",
              "region", "found_at", "seen_at")
    readonly_fields = fields
    inlines = [FindingStepInline]
    actions = ["confirm_selected", "dismiss_selected"]
    change_form_template = "settlement/admin/finding_change_form.html"
    change_list_template = "settlement/admin/finding_change_list.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="单据号")
    def document(self, obj):
        return obj.document_serial or "—"

    @admin.display(description="疑点涉及的单据与人员")
    def behind(self, obj):
        """Links to the claims, cases, contract, person and institution behind the evidence."""
        links = [("机构", _link(obj.institution)), ("参保人", _link(obj.person)),
                 ("门诊结算记录", _link(obj.claim)), ("住院病例", _link(obj.case)), ("家庭医生签约", _link(obj.contract))]
        data = obj.evidence_data or {}
        related = [("claim", i) for i in data.get("claim_ids", [])]
        related += [("claim", data["earlier_claim_id"])] if data.get("earlier_claim_id") else []
        related += [("case", data["earlier_case_id"])] if data.get("earlier_case_id") else []
        models = {"claim": OutpatientClaim, "case": InpatientCase}
        for kind, ids in (("claim", [i for k, i in related if k == "claim"]), ("case", [i for k, i in related if k == "case"])):
            for row in models[kind].objects.filter(pk__in=ids).order_by("pk"):
                links.append(("相关" + row._meta.verbose_name, _link(row)))
        return format_html_join("", "<div>{}：{}</div>", ((label, link) for label, link in links if link != "—"))

    def review_links(self, request, obj):
        """(label, url) of the review steps this user may take on the finding now."""
        out = []
        if scope_for(request.user).role == Role.HOSPITAL and obj.status == FindingStatus.OPEN:
            out.append(("申诉", reverse("admin:settlement_finding_appeal", args=[obj.pk])))
        if obj.rule == HighMultipleCase.code and obj.case_id and request.user.has_perm("settlement.add_casereview"):
            # HIC01 is a 特病单议 candidate: offer the request, prefilled with the case and the evidence.
            query = urlencode({"case": obj.case_id, "kind": ReviewKind.SPECIAL_CASE, "reason": f"高倍率病例：{obj.evidence}"})
            out.append(("申请特病单议", f"{reverse('admin:settlement_casereview_add')}?{query}"))
        if self._may_decide(request) and obj.status in (FindingStatus.OPEN, FindingStatus.APPEALED):
            out.append(("认定", reverse("admin:settlement_finding_decide", args=[obj.pk])))
        return out

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._require_in_scope(request, object_id)
        obj = self.get_queryset(request).filter(pk=object_id).first()
        extra_context = {**(extra_context or {}), "review_links": self.review_links(request, obj) if obj else []}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("run/", wrap(self.run_view), name="settlement_finding_run"),
            path("<int:pk>/appeal/", wrap(self.appeal_view), name="settlement_finding_appeal"),
            path("<int:pk>/decide/", wrap(self.decide_view), name="settlement_finding_decide"),
            path("standalone/", wrap(self.standalone_view), name="settlement_finding_standalone"),
            *super().get_urls(),
        ]

    def _form_page(self, request, title, form, submit, **extra):
        return TemplateResponse(request, "settlement/admin/audit_form.html", {
            **self.admin_site.each_context(request), "title": title, "form": form, "opts": self.model._meta,
            "submit": submit, **extra,
        })

    def _finding(self, request, pk):
        self._require_in_scope(request, str(pk))
        return self.get_queryset(request).get(pk=pk)

    def run_view(self, request):
        if scope_for(request.user).role not in (Role.CITY, Role.COUNTY) and not request.user.is_superuser:
            raise PermissionDenied
        form = RunAuditForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            region = data["region"].code if data["region"] else None
            try:
                job = services.start_audit(data["year"], data["rules"], region, user=request.user)
            except services.AuditError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{job.title}已提交后台运行，可在此查看进度")
                return HttpResponseRedirect(reverse("admin:settlement_job_change", args=[job.pk]))
        return self._form_page(request, "运行智能审核", form, "开始审核")

    def appeal_view(self, request, pk):
        finding = self._finding(request, pk)
        form = AppealForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.appeal(finding.pk, request.user, form.cleaned_data["reason"],
                                form.cleaned_data.get("attachment"))
            except services.AuditError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, "申诉已提交")
                return HttpResponseRedirect(reverse("admin:settlement_finding_change", args=[finding.pk]))
        return self._form_page(request, f"申诉：{finding}", form, "提交申诉")

    def decide_view(self, request, pk):
        finding = self._finding(request, pk)
        form = DecideForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.decide([finding.pk], request.user, form.cleaned_data["decision"] == "confirm",
                                form.cleaned_data["reason"])
            except services.AuditError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, "认定已保存")
                return HttpResponseRedirect(reverse("admin:settlement_finding_change", args=[finding.pk]))
        return self._form_page(request, f"认定：{finding}", form, "保存认定")

    def standalone_view(self, request):
        """打印: the year's stand-alone recoveries per institution, of the findings this user may read."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {"printed_by": request.user, "findings_url": reverse("admin:settlement_finding_changelist")}
        form = StandaloneForm(request.GET)
        if not form.is_valid():
            context["error"] = "；".join(e for errors in form.errors.values() for e in errors)
            return TemplateResponse(request, "settlement/standalone_recoveries.html", context, status=400)
        year, code = form.cleaned_data["year"], form.cleaned_data["institution"]
        findings = self.get_queryset(request)
        institution = None
        if code:
            # The same answer whether the institution exists elsewhere or not at all: no probing.
            institution = restrict(Institution.objects.filter(code=code), request.user).first()
            if institution is None:
                raise Http404("机构不存在或不在您的数据范围内")
            findings = findings.filter(institution=institution)
        groups, overall = standalone_by_institution(findings, year)
        context.update(year=year, institution=institution, overall=_money_cells(overall), groups=[{
            "label": group.label, **_money_cells(group.totals),
            "findings": [{"rule": f.rule, "rule_name": f.rule_name, "subject": f.subject, "evidence": f.evidence,
                          "amount": money(f.amount), "deducted": money(f.deducted), "rest": money(f.rest)}
                         for f in group.findings],
        } for group in groups])
        return TemplateResponse(request, "settlement/standalone_recoveries.html", context)

    def standalone_url(self, request):
        """The printable list for the year the changelist is filtered to (else the latest year read)."""
        year = request.GET.get("year") or (self.get_queryset(request).order_by("-year")
                                           .values_list("year", flat=True).first())
        return f"{reverse('admin:settlement_finding_standalone')}?{urlencode({'year': year})}" if year else None

    # --- bulk review (bureau staff) ----------------------------------------------------------

    def _bulk(self, request, queryset, confirmed):
        form = forms.Form(request.POST if "apply" in request.POST else None)
        form.fields["reason"] = REASON
        if "apply" in request.POST and form.is_valid():
            try:
                done = services.decide(list(queryset.values_list("pk", flat=True)), request.user, confirmed,
                                       form.cleaned_data["reason"])
            except services.AuditError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"已认定{len(done)}条疑点为{'已确认违规' if confirmed else '已排除'}")
            return None
        action = "confirm_selected" if confirmed else "dismiss_selected"
        return self._form_page(
            request, "批量认定为" + ("已确认违规" if confirmed else "已排除"), form, "确认",
            findings=list(queryset[:200]), selected=list(queryset.values_list("pk", flat=True)), action=action,
        )

    def _may_decide(self, request):
        return request.user.is_superuser or scope_for(request.user).role in (Role.CITY, Role.COUNTY)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self._may_decide(request):
            actions.pop("confirm_selected", None)
            actions.pop("dismiss_selected", None)
        return actions

    @admin.action(description="批量认定为已确认违规")
    def confirm_selected(self, request, queryset):
        return self._bulk(request, queryset, True)

    @admin.action(description="批量认定为已排除")
    def dismiss_selected(self, request, queryset):
        return self._bulk(request, queryset, False)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        links = [("运行智能审核", reverse("admin:settlement_finding_run"))] if self._may_decide(request) else []
        standalone = self.standalone_url(request)
        if standalone:
            links.append(("打印单独追回清单", standalone))
        extra_context["portal_extra_links"] = links
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # Counts per rule and institution of what the filters select, within the user's scope.
            response.context_data["audit_counts"] = counts_by_rule_and_institution(changelist.queryset)
        return response
