from django.contrib import admin

from .models import Alliance, ExportRecord, Institution, Membership, Region, UserScope
from .scope import scope_for
from .scoped_admin import ScopedAdmin, ScopedInline


@admin.register(Region)
class RegionAdmin(ScopedAdmin):
    list_display = ("code", "name", "parent")
    search_fields = ("code", "name")
    list_filter = ("parent",)
    autocomplete_fields = ("parent",)


@admin.register(Institution)
class InstitutionAdmin(ScopedAdmin):
    list_display = ("code", "name", "county", "level", "grassroots_kind", "kind", "is_public", "designated_to")
    list_filter = ("level", "kind", "is_public", "county")
    search_fields = ("code", "name")
    autocomplete_fields = ("county",)
    list_select_related = ("county",)


class MembershipInline(ScopedInline, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("institution",)
    fields = ("institution", "joined_on", "left_on")


@admin.register(Alliance)
class AllianceAdmin(ScopedAdmin):
    list_display = ("code", "name", "county", "kind", "lead_hospital", "budget_status", "is_default")
    list_filter = ("kind", "budget_status", "county")
    search_fields = ("code", "name", "lead_hospital__name")
    autocomplete_fields = ("county", "lead_hospital")
    list_select_related = ("county", "lead_hospital")
    inlines = [MembershipInline]
    # The portal changelist plus a link to the global-budget dashboard (医共体运行监测).
    change_list_template = "alliances/change_list_with_dashboard.html"
    # The global-budget status moves only through the application workflow (services_budget), never by
    # editing the alliance form, so every change has its step record.
    readonly_fields = ("budget_status", "budget_effective_from")


@admin.register(Membership)
class MembershipAdmin(ScopedAdmin):
    list_display = ("alliance", "institution", "joined_on", "left_on")
    # Only the alliances the user may see: the plain filter would list every alliance of the city.
    list_filter = (("alliance", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("alliance__code", "alliance__name", "institution__code", "institution__name")
    autocomplete_fields = ("alliance", "institution")
    list_select_related = ("alliance", "institution")
    date_hierarchy = "joined_on"


@admin.register(UserScope)
class UserScopeAdmin(ScopedAdmin):
    list_display = ("user", "role", "region", "institution")
    list_filter = ("role",)
    search_fields = ("user__username", "institution__code", "region__code")
    autocomplete_fields = ("user", "region", "institution")
    list_select_related = ("user", "region", "institution")


@admin.register(ExportRecord)
class ExportRecordAdmin(admin.ModelAdmin):
    """The export trail, read-only for everyone: auditors and the city bureau read every record,
    everybody else at most their own exports."""

    list_display = ("created_at", "user", "channel", "title", "filters", "rows", "file_name")
    list_filter = ("channel", "resource")
    search_fields = ("user__username", "title", "filters", "file_name")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_queryset(self, request):
        records = super().get_queryset(request)
        if scope_for(request.user).sees_all:
            return records
        return records.filter(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in ExportRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


from . import admin_budget  # noqa: E402,F401  (global-budget workflow, budgets, KPIs and assessment)
