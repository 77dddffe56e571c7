from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from settlement.analysis import dashboard

admin.site.site_header = "医保支付方式改革管理平台"
admin.site.site_title = "医保支付方式改革"
admin.site.index_title = "业务管理"

# Chinese 403/404 pages with the refusal's own reason and the admin frame (config/errors.py); 400 and
# 500 keep Django's handlers, which render 400.html/500.html without any context.
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # The dashboard moved to settlement.analysis (issue 16); it keeps the URL and name its users know.
    path("admin/alliances/dashboard/", admin.site.admin_view(dashboard.dashboard), name="alliances_dashboard"),
    path("admin/", admin.site.urls),
]
