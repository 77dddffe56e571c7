import contextlib

from django.contrib import admin
from django.db import connection, transaction

from alliances.big_tables import BigTableAdmin, period_filter
from .analysis.drilldown import DrilldownLookupsMixin
from alliances.formatting import money_column
from alliances.scoped_admin import ScopedAdmin

from .engine.admin_drilldown import AllianceActualFilter, StatementDrilldownMixin, StatementFilter
from .models import (
    Assessment, BedDayQuota, Budget, CapitationStandard, DiseaseStandard, DrgCoefficient, DrgGroup,
    FamilyDoctorService, InpatientCase, Job, JobStatus, OutpatientClaim, Payment, Scheme, SpecialDesignation,
    SpecialStandard,
)
from .imports.resources import RESOURCES
from .kpi_aggregates.services import KpiDelta


class KpiAggregatesKept:
    """Claims and cases changed or deleted through the admin: the KPI pre-aggregates change by the
    difference, the rows as they were out and as they are in, in the same transaction
    (settlement.kpi_aggregates.KpiDelta)."""

    def _rows_sql(self):
        return f"SELECT * FROM {self.model._meta.db_table} WHERE id = ANY(%s)"

    def save_model(self, request, obj, form, change):
        delta = KpiDelta(self.model._meta.db_table)
        with transaction.atomic(), connection.cursor() as cursor:
            if change:
                delta.subtract(cursor, self._rows_sql(), [[obj.pk]])
            super().save_model(request, obj, form, change)
            delta.add(cursor, self._rows_sql(), [[obj.pk]])
            delta.apply(cursor)

    def delete_model(self, request, obj):
        with self._removing([obj.pk]):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with self._removing(list(queryset.order_by().values_list("pk", flat=True))):
            super().delete_queryset(request, queryset)

    @contextlib.contextmanager
    def _removing(self, ids):
        delta = KpiDelta(self.model._meta.db_table)
        with transaction.atomic(), connection.cursor() as cursor:
            delta.subtract(cursor, self._rows_sql(), [ids])
            yield
            delta.apply(cursor)


@admin.register(OutpatientClaim)
class OutpatientClaimAdmin(KpiAggregatesKept, StatementDrilldownMixin, DrilldownLookupsMixin, BigTableAdmin, ScopedAdmin):
    # The money right after the serial: the drill-down from A is read for its 统筹支付 (issue 12, 1,366 px).
    list_display = ("serial", "visit_date", "fund_paid_money", "total_cost_money", "personal_paid_money", "visit_type",
                    "disease", "institution", "person")
    total_cost_money = money_column("total_cost", "总费用")
    fund_paid_money = money_column("fund_paid", "统筹支付")
    personal_paid_money = money_column("personal_paid", "个人负担")
    # The two statement filters: drill-downs from a unit result's or an alliance's A (admin_drilldown).
    list_filter = (period_filter("visit_date", "就诊时间", indexed=True), "visit_type", "insurance_type", "referral",
                   StatementFilter, AllianceActualFilter)
    search_shapes = {"id_number": "person__id_number", "institution": "institution__code", "county": "institution__county__code"}
    search_business_key = ("institution", "serial")
    # Newest upload first (the primary key); a date order would sort the claims of a whole day each
    # time. The 就诊时间 filter narrows to a year or a month instead.
    sortable_by = ()
    autocomplete_fields = ("institution", "person", "disease")
    list_select_related = ("institution", "person", "disease")


@admin.register(InpatientCase)
class InpatientCaseAdmin(KpiAggregatesKept, DrilldownLookupsMixin, BigTableAdmin, ScopedAdmin):
    list_display = ("serial", "discharge_date", "fund_paid_money", "total_cost_money", "admission_date", "principal_diagnosis",
                    "drg_code", "bed_day_category", "institution", "person")
    total_cost_money = money_column("total_cost", "总费用")
    fund_paid_money = money_column("fund_paid", "统筹支付")
    list_filter = (period_filter("discharge_date", "出院日期", indexed=True), "bed_day_category", "incomplete_stay", "new_technology", "transferred")
    search_shapes = {"id_number": "person__id_number", "institution": "institution__code", "county": "institution__county__code"}
    search_default = ("serial", "drg_code", "principal_diagnosis__startswith")
    search_help_text = "输入完整的身份证号、机构编码（H+11位）、区划代码（6位）、流水号、DRG组编码或主诊断编码"
    sortable_by = ("discharge_date",)
    autocomplete_fields = ("institution", "person")
    list_select_related = ("institution", "person")


@admin.register(FamilyDoctorService)
class FamilyDoctorServiceAdmin(BigTableAdmin, ScopedAdmin):
    list_display = ("person", "institution", "service_date", "item")
    list_filter = (period_filter("service_date", "服务日期"),)
    search_shapes = {"id_number": "person__id_number", "institution": "institution__code", "county": "institution__county__code"}
    search_help_text = "输入完整的身份证号、机构编码（H+11位）或区划代码（6位）"
    sortable_by = ()  # service_date has no index of its own
    autocomplete_fields = ("person", "institution")
    list_select_related = ("person", "institution")


@admin.register(SpecialDesignation)
class SpecialDesignationAdmin(ScopedAdmin):
    list_display = ("year", "person", "disease", "institution", "signing_institution")
    list_filter = ("year",)
    search_fields = ("=person__id_number", "disease__code", "institution__code")
    autocomplete_fields = ("person", "disease", "institution", "signing_institution")
    list_select_related = ("person", "disease", "institution", "signing_institution")


@admin.register(CapitationStandard)
class CapitationStandardAdmin(ScopedAdmin):
    list_display = ("year", "insurance_type", "age_band", "disease", "amount_money", "valid_years", "version", "status", "approved_by")
    amount_money = money_column("amount", "人头标准（元/人·年）")
    list_filter = ("year", "insurance_type", "age_band", "status")
    search_fields = ("disease__code", "disease__name")
    autocomplete_fields = ("disease",)
    readonly_fields = ("status", "approved_by", "approved_at")  # approval only through the approve action
    list_select_related = ("disease", "approved_by")


@admin.register(SpecialStandard)
class SpecialStandardAdmin(ScopedAdmin):
    list_display = ("year", "disease", "amount_money", "version", "status", "approved_by")
    amount_money = money_column("amount", "人头标准（元/人·年）")
    list_filter = ("year", "status")
    search_fields = ("disease__code", "disease__name")
    autocomplete_fields = ("disease",)
    readonly_fields = ("status", "approved_by", "approved_at")  # approval only through the approve action


@admin.register(DrgGroup)
class DrgGroupAdmin(ScopedAdmin):
    list_display = ("year", "code", "name", "base_points", "average_cost_money", "bed_day_points", "same_price", "tcm_support")
    average_cost_money = money_column("average_cost", "病组均次费用")
    list_filter = ("year", "same_price", "tcm_support")
    search_fields = ("code", "name")


@admin.register(DrgCoefficient)
class DrgCoefficientAdmin(ScopedAdmin):
    list_display = ("year", "institution", "coefficient")
    list_filter = ("year",)
    search_fields = ("institution__code", "institution__name")
    autocomplete_fields = ("institution",)


@admin.register(BedDayQuota)
class BedDayQuotaAdmin(ScopedAdmin):
    list_display = ("year", "level", "category", "amount_money")
    amount_money = money_column("amount", "床日标准（元/日）")
    list_filter = ("year", "level", "category")


@admin.register(DiseaseStandard)
class DiseaseStandardAdmin(ScopedAdmin):
    list_display = ("year", "disease", "main_operation", "level", "amount_money")
    amount_money = money_column("amount", "支付标准（元/例）")
    list_filter = ("year", "level")
    search_fields = ("disease__code", "disease__name", "main_operation")
    autocomplete_fields = ("disease",)


@admin.register(Budget)
class BudgetAdmin(ScopedAdmin):
    list_display = ("year", "scheme", "unit_code", "insurance_type", "amount_money")
    amount_money = money_column("amount", "预算额度")
    list_filter = ("year", "scheme", "insurance_type")
    search_fields = ("unit_code",)


@admin.register(Assessment)
class AssessmentAdmin(ScopedAdmin):
    list_display = ("year", "unit_code", "score", "retention_bonus", "overspend_reduction")
    list_filter = ("year",)
    search_fields = ("unit_code",)


@admin.register(Payment)
class PaymentAdmin(ScopedAdmin):
    list_display = ("year", "month", "scheme", "unit_code", "amount_money", "source")
    amount_money = money_column("amount", "拨付金额")
    list_filter = ("year", "scheme", "source")
    search_fields = ("unit_code",)


# A job's parameters and counts as a clerk reads them, not as the worker stores them.
PARAM_LABELS = {"scheme": "方案", "year": "年度", "region": "县区", "resource": "数据类型", "land_good_rows": "只导入正确的行"}
COUNT_LABELS = {"units": "结算单位", "rows": "总行数", "created": "新增", "updated": "更新", "unchanged": "未变化",
                "bad_rows": "错误行"}


def _param_value(key, value):
    if isinstance(value, bool):
        return "是" if value else "否"
    if value is None:
        return "全市" if key == "region" else "—"
    if key == "scheme":
        return Scheme(value).label if value in Scheme.values else value
    if key == "resource":
        resource = RESOURCES.get(value)
        return resource.title if resource is not None else value
    return value


@admin.register(Job)
class JobAdmin(ScopedAdmin):
    list_display = ("created_at", "kind", "title", "status", "percent_display", "user", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("title",)
    fields = [f.name for f in Job._meta.fields if f.name not in ("params", "counts")] + ["params_display", "counts_display"]
    readonly_fields = fields
    list_select_related = ("user",)

    @admin.display(description="参数")
    def params_display(self, obj):
        return "；".join(f"{PARAM_LABELS.get(k, k)}：{_param_value(k, v)}" for k, v in (obj.params or {}).items()) or "—"

    @admin.display(description="计数")
    def counts_display(self, obj):
        return "；".join(f"{COUNT_LABELS.get(k, k)}：{v}" for k, v in (obj.counts or {}).items()) or "—"

    @admin.display(description="进度")
    def percent_display(self, obj):
        if obj.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            # It did not complete: how far it got, never a 100% that reads as done.
            return f"{obj.get_status_display()}（{obj.progress_done}/{obj.progress_total}）"
        return f"{obj.percent}%"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # A job is the worker's record: read, never edited, so its page offers no 保存.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        # Nor deleted: it is the record of who imported or computed what, and when (issue 12).
        return False


from .engine import admin as engine_admin  # noqa: E402,F401  (policies, settlement runs, unit results)
from .benefits import admin as benefits_admin  # noqa: E402,F401  (benefit tables, referrals, 待遇测算核对)
from .audit import admin as audit_admin  # noqa: E402,F401  (audit findings and their review, SPEC §9)
from .analysis import admin as analysis_admin  # noqa: E402,F401  (DRG 运行分析, SPEC §10)
