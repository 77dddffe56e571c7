"""The 月度预拨 page (SPEC §4 payments, §6.2–§6.5 monthly prepayments), reached from the settlement-run list.

Imported by settlement/engine/admin.py once SettlementRunAdmin is registered; it adds one URL and a
button to that admin. The page is a thin door: it calls services.run_prepayment, as `manage.py prepay` does.
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from alliances.models import Region
from alliances.scope import Role, scope_for
from settlement.management.commands.prepay import summary_line
from settlement.models import Scheme

from . import services
from .models import SettlementRun

ALLOWED_ROLES = {Role.CITY, Role.COUNTY}


class PrepaymentForm(forms.Form):
    scheme = forms.ChoiceField(label="支付方案", choices=Scheme.choices)
    year = forms.IntegerField(label="年度", min_value=2000, max_value=2100)
    month = forms.IntegerField(label="月份", min_value=1, max_value=12)
    region = forms.ModelChoiceField(label="县区", queryset=Region.objects.none(), required=False,
                                    help_text="空为全市（仅市医保局）；县区医保局只能预拨本县区")

    def __init__(self, *args, scope, **kwargs):
        super().__init__(*args, **kwargs)
        regions = Region.objects.order_by("code")
        if scope.role == Role.COUNTY:
            regions = regions.filter(code__in=scope.region_codes)
            self.fields["region"].required = True
        self.fields["region"].queryset = regions


def _may_prepay(user):
    return user.is_active and user.is_staff and (user.is_superuser or scope_for(user).role in ALLOWED_ROLES)


def prepayment_view(request, model_admin):
    if not _may_prepay(request.user):
        raise PermissionDenied
    scope = scope_for(request.user)
    form = PrepaymentForm(request.POST or None, scope=scope)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        region = data["region"].code if data["region"] else None
        try:
            summary = services.run_prepayment(data["scheme"], data["year"], data["month"], region, user=request.user)
        except services.SettlementError as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
        except ValueError as exc:  # a scheme's input problem, worded in Chinese by the scheme
            model_admin.message_user(request, f"预拨失败：{exc}", messages.ERROR)
        else:
            model_admin.message_user(request, summary_line(data["scheme"], data["year"], data["month"], summary))
            return HttpResponseRedirect(
                f"{reverse('admin:settlement_payment_changelist')}?year={data['year']}&scheme={data['scheme']}"
            )
    return TemplateResponse(request, "settlement/prepayment_form.html", {
        **model_admin.admin_site.each_context(request), "title": "月度预拨", "form": form,
        "opts": model_admin.model._meta, "submit": "执行预拨",
    })


def _install(model_admin):
    original_get_urls = model_admin.get_urls

    def get_urls():
        view = model_admin.admin_site.admin_view(lambda request: prepayment_view(request, model_admin))
        return [path("prepay/", view, name="settlement_settlementrun_prepay"), *original_get_urls()]

    original_changelist_view = model_admin.changelist_view

    def changelist_view(request, extra_context=None):
        # The button shows only to those the page would let in.
        return original_changelist_view(request, {"can_prepay": _may_prepay(request.user), **(extra_context or {})})

    model_admin.get_urls = get_urls
    model_admin.changelist_view = changelist_view
    model_admin.change_list_template = "settlement/prepayment_run_change_list.html"


_install(admin.site._registry[SettlementRun])
