"""The portal's admin site: navigation in the order the work goes, and who is logged in.

`admin.site` stays the one object every ModelAdmin registers with: PortalAdminConfig replaces
"django.contrib.admin" in INSTALLED_APPS and only names the site class Django builds it from
(Django's documented "overriding the default admin site"), so no registration moves.

Nothing here imports models at module level: this module is imported while INSTALLED_APPS is read.
"""
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

# Apps, then each app's models, as a clerk meets them in a year's work: 政策 → 标准 → 结算 → 数据 →
# 监管 → 分析/其他. The payment-reform app comes first because it holds the policies and standards;
# the master data of the other apps follows; account administration last. Within 结算与支付 the
# runs come before the claims: the claims (millions of rows) are reached from a unit's result by
# drill-down, and Django's default alphabetical order had put them first, burying 结算批次 and 支付政策.
# Models (or apps) not listed keep Django's order after the listed ones, so a new model shows up
# at the end of its app instead of disappearing.
NAVIGATION = (
    ("settlement", (
        "PaymentPolicy",  # 政策
        "CapitationStandard", "SpecialStandard", "SpecialDesignation", "DrgGroup", "DrgCoefficient",
        "BedDayQuota", "DiseaseStandard", "Budget",  # 标准
        "SettlementRun", "UnitResult", "Payment",  # 结算
        "OutpatientClaim", "InpatientCase", "FamilyDoctorService", "Assessment",  # 数据
        "CaseReview", "DiseaseExitRequest",  # 监管
        "DrgAnalysis",  # 分析
        "Job",  # 其他
    )),
    ("alliances", (
        "AssessmentScheme", "KpiTarget",  # 政策与标准（考核）
        "Region", "Institution", "Alliance", "Membership",  # 数据
        "BudgetApplication", "BudgetWorkflowStep", "AllianceBudgetPlan", "MemberAllocation",  # 总额预算
        "UserScope",  # 账号
    )),
    ("contracts", (
        "Disease", "ServicePackage",  # 目录与标准
        "InsuredPerson", "FamilyDoctorTeam", "Contract", "DiseaseRegistration",  # 数据
    )),
    ("auth", ("User", "Group")),
)


def _rank(order, name):
    return order.index(name) if name in order else len(order)


def order_app_list(app_list, navigation=NAVIGATION):
    """Sort apps and their models by `navigation`; sorted() is stable, so unlisted ones keep their order."""
    app_order = [label for label, _ in navigation]
    model_orders = dict(navigation)
    for app in app_list:
        order = model_orders.get(app["app_label"], ())
        app["models"].sort(key=lambda model: _rank(order, model["object_name"]))
    return sorted(app_list, key=lambda app: _rank(app_order, app["app_label"]))


class PortalAdminSite(admin.AdminSite):
    # site_header, site_title and index_title are set in config/urls.py.

    def get_app_list(self, request, app_label=None):
        # Also what the sidebar (each_context's available_apps) and an app's index page list.
        return order_app_list(super().get_app_list(request, app_label))

    def each_context(self, request):
        context = super().each_context(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            from alliances.scope import Role, scope_for

            # Chinese order, family name first, no space; the username as typed when no name is set.
            context["portal_user_name"] = f"{user.last_name}{user.first_name}".strip() or user.get_username()
            context["portal_role_label"] = Role.LABELS.get(scope_for(user).role, "")
        return context


class PortalAdminConfig(AdminConfig):
    default_site = "config.admin.PortalAdminSite"
