"""Reads of findings shared by the admin, the export and the dashboard."""
import dataclasses
from decimal import Decimal

from django.db.models import Count, Sum

from alliances.scope import restrict

from . import recovery
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


# How many institutions the dashboard's card lists by name; the rest are one line.
DASHBOARD_INSTITUTIONS = 20


def dashboard_counts(user, year, top=DASHBOARD_INSTITUTIONS):
    """The KPI dashboard's findings card: counts per rule and institution of the year, in the user's scope.

    One GROUP BY over the findings table (small: one row per finding, indexed by year and rule), pivoted
    here into the institutions with most findings × the rules; every count links to the findings list
    filtered alike, so the list shows exactly the findings counted."""
    from django.urls import reverse
    from django.utils.http import urlencode

    from alliances.models import Institution

    from .rules import registered_rules

    grouped = list(
        restrict(Finding.objects.filter(year=year), user).order_by()
        .values_list("rule", "institution_id").annotate(n=Count("id"))
    )
    if not grouped:
        return None
    rules = list(registered_rules().values())
    base = reverse("admin:settlement_finding_changelist")

    def link(rule=None, institution=None):
        query = {"year": year}
        if rule:
            query["rule"] = rule
        if institution == "none":
            query["institution__isnull"] = "True"
        elif institution:
            query["institution__id__exact"] = institution
        return f"{base}?{urlencode(query)}"

    by_institution = {}
    for rule, institution_id, n in grouped:
        by_institution.setdefault(institution_id, {})[rule] = n
    ranked = sorted(by_institution.items(), key=lambda item: (-sum(item[1].values()), item[0] is None, item[0] or 0))
    shown = ranked[:top]
    names = dict(Institution.objects.filter(pk__in=[pk for pk, _ in shown if pk]).values_list("pk", "name"))
    codes = dict(Institution.objects.filter(pk__in=[pk for pk, _ in shown if pk]).values_list("pk", "code"))

    def cells(counts, institution):
        return [{"count": counts.get(r.code, 0), "url": link(r.code, institution)} for r in rules]

    rows = []
    for pk, counts in shown:
        key = pk if pk else "none"
        label = f"{names[pk]}（{codes[pk]}）" if pk else "（参保人层面，无机构）"
        rows.append({"label": label, "cells": cells(counts, key), "total": sum(counts.values()), "url": link(None, key)})
    totals = {}
    for _rule, _pk, n in grouped:
        totals[_rule] = totals.get(_rule, 0) + n
    return {
        "year": year,
        "rules": [{"code": r.code, "name": r.name} for r in rules],
        "rows": rows,
        "others": len(ranked) - len(shown),
        "totals": cells(totals, None),
        "total": sum(totals.values()),
        "url": link(),
    }


# --- stand-alone recoveries (SPEC §9) -----------------------------------------------------------


@dataclasses.dataclass
class RecoveryTotals:
    """涉及金额, 已在结算中扣回 and 另行追回金额 of some findings; amount − deducted = rest on every row and sum."""

    amount: Decimal = Decimal("0.00")
    deducted: Decimal = Decimal("0.00")
    rest: Decimal = Decimal("0.00")

    def add(self, finding):
        self.amount += finding.amount
        self.deducted += finding.deducted
        self.rest += finding.rest


@dataclasses.dataclass
class InstitutionRecoveries:
    label: str
    findings: list
    totals: RecoveryTotals


def standalone_by_institution(findings, year):
    """The year's stand-alone recoveries among `findings` (already in the reader's scope), per institution
    in code order, with each institution's totals and the overall ones. A finding on a person across
    institutions (FRQ02, REL01) has no institution: such rests are listed per the person's county."""
    groups, overall = {}, RecoveryTotals()
    for finding in recovery.standalone(year, findings):
        if finding.institution_id:
            key, label = ("", finding.institution.code), f"{finding.institution.name}（{finding.institution.code}）"
        else:
            key, label = ("~", finding.region.code), f"无单一机构（参保人所在县区：{finding.region.name}）"
        group = groups.setdefault(key, InstitutionRecoveries(label, [], RecoveryTotals()))
        group.findings.append(finding)
        group.totals.add(finding)
        overall.add(finding)
    return [groups[key] for key in sorted(groups)], overall
