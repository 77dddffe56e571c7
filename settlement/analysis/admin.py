"""The DRG 运行分析 page (SPEC §10) on the admin: per year and pool, scoped; its xlsx export.

The proxy model's changelist is the page, so the navigation (分析) and the permission come from the
admin itself; every figure comes from analysis.pages, which reads through the same restriction."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from settlement.engine.services import SettlementError, check_year

from . import aggregates, drg, pages
from .export import xlsx_bytes
from .models import DrgAnalysis
from .reports import export_rows, institution_rows


@admin.register(DrgAnalysis)
class DrgAnalysisAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:settlement_drganalysis_changelist"))

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        url = reverse("admin:settlement_drganalysis_changelist")
        try:
            year = check_year(request.GET.get("year") or pages.default_year())
        except SettlementError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(url)
        basis = drg.basis(year)
        fresh = aggregates.is_fresh(basis)
        scope = pages.scope_arguments(request.user)
        pools = aggregates.pool_codes(year, **scope) if fresh else drg.pool_codes(year, basis, **scope)
        pool_code = request.GET.get("pool") or (pools[0] if pools else None)
        if pool_code is not None and pool_code not in pools:
            self.message_user(request, f"统筹池“{pool_code}”在{year}年度没有DRG病例或不在您的数据范围内", messages.ERROR)
            return HttpResponseRedirect(f"{url}?year={year}")
        if pool_code and request.GET.get("_export") == "xlsx":
            rows = institution_rows(year, user=request.user, pool_code=pool_code, with_pools=True, the_basis=basis)
            response = HttpResponse(xlsx_bytes(export_rows(rows)),
                                    content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            response["Content-Disposition"] = f'attachment; filename="drg-analysis-{year}-{pool_code}.xlsx"'
            return response
        institution = request.GET.get("institution", "")
        figures = pages.page(year, pool_code, request.user, int(institution) if institution.isdigit() else None,
                             the_basis=basis) if pool_code else None
        if figures and not figures["aggregated"]:
            self.message_user(request, f"{year}年度DRG运行分析汇总尚未生成或已过期（DRG结算批次或审核政策的高低倍率已变化），"
                                       f"本页为实时计算，可能较慢；请运行 manage.py rebuild_drg_analysis --year {year}",
                              messages.WARNING)
        if basis.note:
            self.message_user(request, basis.note, messages.WARNING)
        return TemplateResponse(request, "settlement/analysis/drg.html", {
            **self.admin_site.each_context(request), "title": f"{year}年度DRG运行分析", "opts": self.model._meta,
            "year": year, "pools": pools, "pool_code": pool_code, "figures": figures, "run": basis.run,
            "cases_url": reverse("admin:settlement_inpatientcase_changelist"),
        })
