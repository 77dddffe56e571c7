from django.contrib import admin

from alliances.big_tables import BigTableAdmin, period_filter
from alliances.drilldown import DrilldownLookupsMixin
from alliances.scoped_admin import ScopedAdmin

from .models import (
    Assessment, BedDayQuota, Budget, CapitationStandard, DiseaseStandard, DrgCoefficient, DrgGroup,
    FamilyDoctorService, InpatientCase, Job, OutpatientClaim, Payment, SpecialDesignation, SpecialStandard,
)


@admin.register(OutpatientClaim)
class OutpatientClaimAdmin(DrilldownLookupsMixin, BigTableAdmin, ScopedAdmin):
    list_display = ("serial", "institution", "person", "visit_date", "visit_type", "disease", "total_cost", "fund_paid", "personal_paid")
    list_filter = (period_filter("visit_date", "就诊时间", indexed=True), "visit_type", "insurance_type", "referral")
    search_shapes = {"id_number": "person__id_number", "institution": "institution__code", "county": "institution__county__code"}
    search_business_key = ("institution", "serial")
    # Newest upload first (the primary key); a date order would sort the claims of a whole day each
    # time. The 就诊时间 filter narrows to a year or a month instead.
    sortable_by = ()
    autocomplete_fields = ("institution", "person", "disease")
    list_select_related = ("institution", "person", "disease")


@admin.register(InpatientCase)
class InpatientCaseAdmin(DrilldownLookupsMixin, BigTableAdmin, ScopedAdmin):
    list_display = ("serial", "institution", "person", "admission_date", "discharge_date", "principal_diagnosis", "drg_code", "bed_day_category", "total_cost", "fund_paid")
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
    list_display = ("year", "insurance_type", "age_band", "disease", "amount", "valid_years", "version", "status", "approved_by")
    list_filter = ("year", "insurance_type", "age_band", "status")
    search_fields = ("disease__code", "disease__name")
    autocomplete_fields = ("disease",)
    readonly_fields = ("status", "approved_by", "approved_at")  # approval only through the approve action
    list_select_related = ("disease", "approved_by")


@admin.register(SpecialStandard)
class SpecialStandardAdmin(ScopedAdmin):
    list_display = ("year", "disease", "amount", "version", "status", "approved_by")
    list_filter = ("year", "status")
    search_fields = ("disease__code", "disease__name")
    autocomplete_fields = ("disease",)
    readonly_fields = ("status", "approved_by", "approved_at")  # approval only through the approve action


@admin.register(DrgGroup)
class DrgGroupAdmin(ScopedAdmin):
    list_display = ("year", "code", "name", "base_points", "average_cost", "bed_day_points", "same_price", "tcm_support")
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
    list_display = ("year", "level", "category", "amount")
    list_filter = ("year", "level", "category")


@admin.register(DiseaseStandard)
class DiseaseStandardAdmin(ScopedAdmin):
    list_display = ("year", "disease", "main_operation", "level", "amount")
    list_filter = ("year", "level")
    search_fields = ("disease__code", "disease__name", "main_operation")
    autocomplete_fields = ("disease",)


@admin.register(Budget)
class BudgetAdmin(ScopedAdmin):
    list_display = ("year", "scheme", "unit_code", "insurance_type", "amount")
    list_filter = ("year", "scheme", "insurance_type")
    search_fields = ("unit_code",)


@admin.register(Assessment)
class AssessmentAdmin(ScopedAdmin):
    list_display = ("year", "unit_code", "score", "retention_bonus", "overspend_reduction")
    list_filter = ("year",)
    search_fields = ("unit_code",)


@admin.register(Payment)
class PaymentAdmin(ScopedAdmin):
    list_display = ("year", "month", "scheme", "unit_code", "amount", "source")
    list_filter = ("year", "scheme", "source")
    search_fields = ("unit_code",)


@admin.register(Job)
class JobAdmin(ScopedAdmin):
    list_display = ("created_at", "kind", "title", "status", "percent_display", "user", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("title",)
    readonly_fields = [f.name for f in Job._meta.fields]
    list_select_related = ("user",)

    @admin.display(description="进度")
    def percent_display(self, obj):
        return f"{obj.percent}%"

    def has_add_permission(self, request):
        return False


from .engine import admin as engine_admin  # noqa: E402,F401  (policies, settlement runs, unit results)
from .benefits import admin as benefits_admin  # noqa: E402,F401  (benefit tables, referrals, 待遇测算核对)
from .analysis import admin as analysis_admin  # noqa: E402,F401  (DRG 运行分析, SPEC §10)
