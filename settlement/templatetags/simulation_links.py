"""The 模拟 links on a settlement run's page (templates/settlement/admin/run_change_form.html)."""
from django import template
from django.urls import reverse
from django.utils.html import format_html

from settlement.engine.simulation import SIMULABLE, simulate_refusal

register = template.Library()


@register.simple_tag(takes_context=True)
def simulation_links(context, run):
    """<li> items for the object tools: 模拟 (for those who may simulate a settled run) and 模拟记录."""
    if run is None or not getattr(run, "pk", None):
        return ""
    user = context["request"].user
    items = []
    if run.status in SIMULABLE and simulate_refusal(user, run) is None:
        items.append(format_html('<li><a href="{}" id="simulate-link">模拟</a></li>',
                                 reverse("admin:settlement_simulation_new", args=[run.pk])))
    if run.simulations.exists():
        items.append(format_html('<li><a href="{}?run={}">模拟记录</a></li>',
                                 reverse("admin:settlement_simulation_changelist"), run.pk))
    return format_html("{}" * len(items), *items) if items else ""
