"""Pages of the policy simulation (SPEC §11): the 模拟 form from a run, the result, the export and the
comparison of simulations. Every page reads through `restrict`; starting one calls the service.

Imported from settlement/engine/admin.py's end, like the other engine admin modules.
"""
import dataclasses
import json
import typing
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from alliances.scope import restrict, scope_for
from alliances.scoped_admin import ScopedAdmin
from settlement.approval import Refused

from . import simulation as sim
from .base import get_rule
from .models import SettlementRun
from .param_forms import bounds_text, parameter_field
from .params import field_label
from .simulation_export import simulation_bytes
from .simulation_models import Simulation, SimulationStatus

MINUS = "\u2212"
# The figures the result page shows per unit (SPEC §11 / issue 17): Q, A, S, unit part, E, 年终清算金额.
PAGE_FIGURES = [
    ("quota", "预算额度（Q）"), ("actual", "实际支出（A）"), ("surplus", "结余超支（S）"),
    ("unit_part", "单位分担留用"), ("entitled", "应得金额（E）"), ("amount", "年终清算金额"),
]


def money(value):
    """1,234,567.89 with U+2212 for a negative amount."""
    if value is None:
        return "—"
    text = f"{abs(value):,.2f}"
    return f"{MINUS}{text}" if value < 0 else text


def signed_money(value):
    """A difference: +1,234.00, −1,234.00 or 0.00."""
    if value is None:
        return "—"
    return f"+{money(value)}" if value > 0 else money(value)


# --- the form --------------------------------------------------------------------------------


class SimulationForm(forms.Form):
    """The scheme's parameters prefilled with the run's policy values, the applicable factors, a note."""

    def __init__(self, run, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.run = run
        rule = get_rule(run.scheme)
        hints = typing.get_type_hints(rule.params_class)
        self.initial_parameters = dict(run.parameters or {})
        self.parameter_names = []
        for field in dataclasses.fields(rule.params_class):
            if field.name not in self.initial_parameters:
                continue
            self.fields[f"p_{field.name}"] = parameter_field(field, hints[field.name], self.initial_parameters[field.name],
                                                             label=f"{field_label(field)}（{field.name}）")
            self.parameter_names.append(field.name)
        self.factor_names = []
        for f in dataclasses.fields(sim.Factors):
            if f.name not in rule.simulation_factors:
                continue
            self.fields[f"f_{f.name}"] = forms.CharField(
                label=f"{field_label(f)}（{f.name}_factor）", initial="1", required=False,
                help_text=f"{bounds_text(f.metadata)}；1为不调整", widget=forms.TextInput(attrs={"size": 8}),
            )
            self.factor_names.append(f.name)
        self.fields["note"] = forms.CharField(label="说明", max_length=200, required=False)

    def parameter_fields(self):
        return [self[f"p_{name}"] for name in self.parameter_names]

    def factor_fields(self):
        return [self[f"f_{name}"] for name in self.factor_names]

    def request(self):
        """(changes, factors): the parameters whose value the user changed, and the factors."""
        changes = {}
        for name in self.parameter_names:
            value = self.cleaned_data[f"p_{name}"]
            initial = self.initial_parameters[name]
            if isinstance(value, str) and not isinstance(initial, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass  # from_json names the parameter and says what is wrong
            if isinstance(value, str):
                value = value.strip()
            if value != initial:
                changes[name] = value
        factors = {name: (self.cleaned_data[f"f_{name}"] or "1").strip() for name in self.factor_names}
        return changes, factors


# --- the admin ---------------------------------------------------------------------------------


class BaseRunFilter(admin.SimpleListFilter):
    """`?run=<SettlementRun id>`: the simulations of one run (the run's 模拟记录)."""

    title = "基准结算批次"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        value = self.value()
        if not value or not value.isdigit():
            return []
        run = restrict(SettlementRun.objects.select_related("region"), request.user).filter(pk=value).first()
        return [(value, str(run))] if run else [(value, "无权查看")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(base_run_id=value) if value.isdigit() else queryset.none()


@admin.register(Simulation)
class SimulationAdmin(ScopedAdmin):
    list_display = ("__str__", "scheme", "year", "changes_text", "status", "progress", "created_by", "created_at")
    list_filter = (BaseRunFilter, "scheme", "year", "status")
    list_select_related = ("base_run", "base_run__region", "created_by")
    search_fields = ("note",)
    actions = ["compare_selected"]

    def has_add_permission(self, request):
        return False  # started from a run's page (模拟), which calls the service

    def has_change_permission(self, request, obj=None):
        return False  # a simulation's figures are the computation's, never edited

    def has_delete_permission(self, request, obj=None):
        return False  # kept, so that simulations can be compared later

    @admin.display(description="调整内容")
    def changes_text(self, obj):
        return describe_changes(obj) or "未调整"

    @admin.display(description="进度")
    def progress(self, obj):
        return format_html('<progress max="100" value="{}" style="width:6em"></progress> {}%', obj.percent, obj.percent)

    @admin.action(description="比较所选模拟")
    def compare_selected(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.order_by("pk").values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:settlement_simulation_compare')}?ids={ids}")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("new/<int:run_id>/", view(self.new_view), name="settlement_simulation_new"),
            path("<int:pk>/export/", view(self.simulation_export_view), name="settlement_simulation_export"),
            path("compare/", view(self.compare_view), name="settlement_simulation_compare"),
            *super().get_urls(),
        ]

    def _visible_run(self, request, run_id):
        run = restrict(SettlementRun.objects.select_related("region"), request.user).filter(pk=run_id).first()
        if run is None:
            raise Http404("结算批次不存在或不在您的数据范围内")
        return run

    def _visible(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        simulation = (self.get_queryset(request).select_related("base_run", "base_run__region", "created_by")
                      .filter(pk=pk).first())
        if simulation is None:
            raise Http404("政策模拟不存在或不在您的数据范围内")
        return simulation

    def new_view(self, request, run_id):
        run = self._visible_run(request, run_id)
        refusal = sim.simulate_refusal(request.user, run)
        if refusal:
            raise PermissionDenied(refusal)
        form = SimulationForm(run, request.POST or None)
        if request.method == "POST" and form.is_valid():
            changes, factors = form.request()
            try:
                simulation = sim.start_simulation(run, changes, factors, user=request.user,
                                                  note=form.cleaned_data["note"])
            except Refused as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"{simulation}已提交计算")
                return HttpResponseRedirect(reverse("admin:settlement_simulation_change", args=[simulation.pk]))
        return TemplateResponse(request, "settlement/simulation/form.html", {
            **self.admin_site.each_context(request), "title": f"政策模拟：{run}", "form": form, "run": run,
            "opts": self.model._meta, "scheme_label": sim.scheme_label(run.scheme),
            "simulations": run.simulations.order_by("-number")[:20],
        })

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            raise Http404("政策模拟不存在或不在您的数据范围内")
        simulation = sim.settle_with_job(self._visible(request, object_id))
        units = list(sim.visible_units(simulation, request.user))
        summary = sim.totals(units)
        return TemplateResponse(request, "settlement/simulation/result.html", {
            **self.admin_site.each_context(request), "title": str(simulation), "simulation": simulation,
            "opts": self.model._meta, "run": simulation.base_run, "running": simulation.status in (
                SimulationStatus.QUEUED, SimulationStatus.COMPUTING),
            "changes": change_rows(simulation), "rows": unit_rows(units), "headers": PAGE_FIGURES,
            "summary": summary_rows(summary), "largest": unit_rows(summary["largest"]),
            "counts": summary, "chart": chart_data(units), "warnings": visible_warnings(simulation, request.user),
            "others": restrict(simulation.base_run.simulations.exclude(pk=simulation.pk), request.user)
            .filter(status=SimulationStatus.COMPUTED).order_by("-number")[:20],
            "may_simulate": sim.simulate_refusal(request.user, simulation.base_run) is None,
        })

    def simulation_export_view(self, request, pk):
        simulation = self._visible(request, pk)
        if simulation.status != SimulationStatus.COMPUTED:
            self.message_user(request, f"{simulation}尚未计算完成，不能导出", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlement_simulation_change", args=[simulation.pk]))
        response = HttpResponse(
            simulation_bytes(simulation, "xlsx", user=request.user),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        name = f"simulation-{simulation.scheme}-{simulation.year}-v{simulation.base_run.version}-{simulation.number}.xlsx"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def compare_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        raw = [part for part in request.GET.get("ids", "").split(",") if part.strip()]
        if not raw or not all(part.strip().isdigit() for part in raw):
            self.message_user(request, "请选择要比较的模拟", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlement_simulation_changelist"))
        ids = sorted({int(part) for part in raw})
        found = list(self.get_queryset(request).select_related("base_run", "base_run__region")
                     .filter(pk__in=ids, status=SimulationStatus.COMPUTED).order_by("number"))
        if len(found) != len(ids):
            raise Http404("所选模拟不存在、未完成或不在您的数据范围内")
        try:
            rows = sim.comparison(found, request.user)
        except Refused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlement_simulation_changelist"))
        return TemplateResponse(request, "settlement/simulation/compare.html", {
            **self.admin_site.each_context(request), "title": "比较政策模拟", "opts": self.model._meta,
            "simulations": [(s, describe_changes(s) or "未调整") for s in found], "run": found[0].base_run,
            "rows": [{
                "unit_code": r["unit_code"], "unit_name": r["unit_name"], "base": money(r["base"]),
                "cells": [(money(a), signed_money(d)) for a, d in zip(r["amounts"], r["differences"])],
            } for r in rows],
            "totals": compare_totals(rows, len(found)),
        })


# --- what the pages show -----------------------------------------------------------------------


def describe_changes(simulation):
    parts = [f"{name}={_shown(value)}" for name, value in simulation.changes.items()]
    parts += [f"{name}_factor={value}" for name, value in simulation.factors.items()]
    return "，".join(parts)


def _shown(value):
    if isinstance(value, (list, tuple)):
        return "、".join(map(str, value))
    return str(value)


def change_rows(simulation):
    """(label, base value, simulated value) of each changed parameter and factor."""
    rule = get_rule(simulation.scheme)
    fields = {f.name: f for f in dataclasses.fields(rule.params_class)}
    base = simulation.base_run.parameters or {}
    rows = [
        (f"{field_label(fields[name])}（{name}）" if name in fields else name, _shown(base.get(name, "—")), _shown(value))
        for name, value in simulation.changes.items()
    ]
    rows += [(f"{sim.factor_label(name)}（{name}_factor）", "1", value) for name, value in simulation.factors.items()]
    return rows


def unit_rows(units):
    return [{
        "unit_code": u.unit_code, "unit_name": u.unit_name, "in_base": u.in_base, "in_simulation": u.in_simulation,
        "cells": [(money(getattr(u, f"base_{f}")), money(getattr(u, f)), signed_money(u.difference(f)),
                   u.difference(f)) for f, _ in PAGE_FIGURES],
    } for u in units]


def summary_rows(summary):
    sums = summary["sums"]
    rows = [("基金支出（Σ应得金额E）", sums["entitled"])]
    rows += [(f"Σ{label}", sums[field]) for field, label in PAGE_FIGURES if field != "entitled"]
    return [(label, money(s["base"]), money(s["simulated"]), signed_money(s["difference"])) for label, s in rows]


def compare_totals(rows, count):
    base = sum((r["base"] for r in rows), Decimal("0.00"))
    totals = []
    for index in range(count):
        amount = sum((r["amounts"][index] or Decimal("0.00") for r in rows), Decimal("0.00"))
        totals.append((money(amount), signed_money(amount - base)))
    return {"base": money(base), "cells": totals}


def chart_data(units):
    """The bar chart's data, built here and handed over with json_script: per unit its name and the
    difference of 年终清算金额 as an exact decimal string, with the texts the tooltip shows."""
    return {
        "title": "各单位年终清算金额差额（模拟 − 基准，元）",
        "series": "年终清算金额差额",
        "units": [f"{u.unit_name or u.unit_code}（{u.unit_code}）" for u in units],
        "values": [str(u.difference("amount")) for u in units],
        "tooltips": [
            f"{u.unit_name or u.unit_code}（{u.unit_code}）<br>基准 {money(u.base_amount)} 元<br>"
            f"模拟 {money(u.amount)} 元<br>差额 {signed_money(u.difference('amount'))} 元"
            for u in units
        ],
    }


def visible_warnings(simulation, user):
    """All warnings for whole-city users; otherwise only those of the units in the user's scope."""
    if user is None or scope_for(user).sees_all:
        return list(simulation.warnings)
    units = restrict(simulation.units.exclude(warnings=[]), user).order_by("unit_code")
    return [f"{u.unit_name or u.unit_code}：{w}" for u in units for w in u.warnings]
