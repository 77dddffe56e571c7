"""Reads of findings shared by the admin, the export and the dashboard."""
from django.db.models import Count, Sum

from alliances.scope import restrict

from .models import Finding


def findings(year, rule_codes=None, region=None, user=None):
    qs = Finding.objects.filter(year=year).select_related("institution", "person", "claim", "case")
    if rule_codes:
        qs = qs.filter(rule__in=rule_codes)
    if region is not None:
        qs = qs.filter(region=region)
    if user is not None:
        qs = restrict(qs, user)
    return qs.order_by("rule", "institution__code", "subject")


def counts_by_rule_and_institution(queryset):
    """(rule, rule name, institution code, count, Σ 涉及金额) of a findings queryset, one GROUP BY."""
    return list(
        queryset.order_by().values("rule", "rule_name", "institution__code")
        .annotate(count=Count("id"), amount=Sum("amount")).order_by("rule", "institution__code")
    )
