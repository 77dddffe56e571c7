from django.contrib import admin

from .models import Alliance, Institution, Membership, Region, UserScope
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


from . import admin_budget  # noqa: E402,F401  (global-budget workflow, budgets, KPIs and assessment)
