"""The findings card of the KPI dashboard (SPEC §9): `{% audit_finding_counts year %}`."""
from django import template

from settlement.audit.selectors import dashboard_counts

register = template.Library()


@register.inclusion_tag("settlement/audit/finding_counts.html", takes_context=True)
def audit_finding_counts(context, year):
    return {"counts": dashboard_counts(context["request"].user, year), "year": year}
