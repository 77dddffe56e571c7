from django.contrib import admin

from alliances.drilldown import DrilldownLookupsMixin
from alliances.scoped_admin import ScopedAdmin

from .models import (
    Assessment, BedDayQuota, Budget, CapitationStandard, DiseaseStandard, DrgCoefficient, DrgGroup,
    FamilyDoctorService, InpatientCase, Job, OutpatientClaim, Payment, SpecialDesignation, SpecialStandard,
)


@admin.register(OutpatientClaim)
class OutpatientClaimAdmin(DrilldownLookupsMixin, ScopedAdmin):
    list_display = ("serial", "institution", "person", "visit_date", "visit_type", "disease", "total_cost", "fund_paid", "personal_paid")
    list_filter = ("visit_type", "insurance_type", "referral")
    search_fields = ("=serial", "=person__id_number", "=institution__code")
    autocomplete_fields = ("institution", "person", "disease")
    list_select_related = ("institution", "person", "disease")
    date_hierarchy = "visit_date"


@admin.register(InpatientCase)
class InpatientCaseAdmin(DrilldownLookupsMixin, ScopedAdmin):
    list_display = ("serial", "institution", "person", "admission_date", "discharge_date", "principal_diagnosis", "drg_code", "bed_day_category", "total_cost", "fund_paid")
    list_filter = ("bed_day_category", "incomplete_stay", "new_technology", "transferred")
    search_fields = ("=serial", "=person__id_number", "=institution__code", "drg_code", "principal_diagnosis")
    autocomplete_fields = ("institution", "person")
    list_select_related = ("institution", "person")
    date_hierarchy = "discharge_date"


@admin.register(FamilyDoctorService)
class FamilyDoctorServiceAdmin(ScopedAdmin):
    list_display = ("person", "institution", "service_date", "item")
    search_fields = ("=person__id_number", "=institution__code", "item")
    autocomplete_fields = ("person", "institution")
    list_select_related = ("person", "institution")
    date_hierarchy = "service_date"


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
from .audit import admin as audit_admin  # noqa: E402,F401  (audit findings and their review, SPEC §9)
