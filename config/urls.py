from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "医保支付方式改革管理平台"
admin.site.site_title = "医保支付方式改革"
admin.site.index_title = "业务管理"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]
