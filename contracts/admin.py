from django.contrib import admin

from alliances.scoped_admin import ScopedAdmin

from .models import (
    Contract, Disease, DiseaseRegistration, FamilyDoctorTeam, InsuredPerson, ServicePackage, ServicePackageItem,
)


@admin.register(InsuredPerson)
class InsuredPersonAdmin(ScopedAdmin):
    list_display = ("masked_id", "name", "sex", "birth_date", "insurance_type", "county", "status")
    list_filter = ("insurance_type", "status", "sex", "county")
    search_fields = ("=id_number", "name")
    readonly_fields = ("birth_date", "sex")
    autocomplete_fields = ("county",)
    list_select_related = ("county",)

    @admin.display(description="身份证号")
    def masked_id(self, obj):
        return obj.masked_id


@admin.register(Disease)
class DiseaseAdmin(ScopedAdmin):
    list_display = ("code", "name", "category", "main_operation")
    list_filter = ("category",)
    search_fields = ("code", "name")


@admin.register(DiseaseRegistration)
class DiseaseRegistrationAdmin(ScopedAdmin):
    list_display = ("person", "disease", "filed_on", "ended_on", "approving_institution")
    list_filter = ("disease__category",)
    search_fields = ("=person__id_number", "person__name", "disease__code", "disease__name")
    autocomplete_fields = ("person", "disease", "approving_institution")
    list_select_related = ("person", "disease", "approving_institution")
    date_hierarchy = "filed_on"


class ServicePackageItemInline(admin.TabularInline):
    model = ServicePackageItem
    extra = 0


@admin.register(ServicePackage)
class ServicePackageAdmin(ScopedAdmin):
    list_display = ("code", "name", "fee", "is_default")
    search_fields = ("code", "name")
    inlines = [ServicePackageItemInline]


@admin.register(FamilyDoctorTeam)
class FamilyDoctorTeamAdmin(ScopedAdmin):
    list_display = ("name", "institution", "lead_doctor")
    search_fields = ("name", "institution__code", "institution__name", "lead_doctor")
    autocomplete_fields = ("institution",)
    list_select_related = ("institution",)


@admin.register(Contract)
class ContractAdmin(ScopedAdmin):
    list_display = ("person", "team", "institution", "package", "start", "end", "verified_on")
    list_filter = (("verified_on", admin.EmptyFieldListFilter), "package")
    search_fields = ("=person__id_number", "person__name", "team__name", "institution__code", "institution__name")
    autocomplete_fields = ("person", "team", "package")
    list_select_related = ("person", "team", "institution", "package")
    date_hierarchy = "start"
    readonly_fields = ("verified_by",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        # Only health-commission or bureau staff may verify a contract (SPEC §3).
        if self.user_scope(request).is_hospital:
            fields.append("verified_on")
        return fields

    def save_model(self, request, obj, form, change):
        if "verified_on" in form.changed_data:
            obj.verified_by = request.user if obj.verified_on else None
        super().save_model(request, obj, form, change)
