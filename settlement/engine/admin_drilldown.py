"""Drill-downs from a statement's A to every claim in it (issue 18, finding 3).

A statement's A may rest on claims outside the reader's own scope: a lead hospital's alliance pays
for its contracted residents' visits at institutions outside the alliance. Whoever may read the
statement (the unit result, or the alliance on the dashboard) may therefore list exactly the claims
in that A, read-only, so that the drill-down's count and sum equal the figure. Any other claims
changelist stays scoped by `restrict()`.
"""
from django.contrib import admin
from django.core.exceptions import ValidationError

from alliances.models import Alliance
from alliances.scope import restrict, scope_for
from settlement.models import OutpatientClaim

from .base import RunContext, get_rule
from .models import UnitResult
from .params import defaults_of, from_json

UNIT_PARAM, ALLIANCE_PARAM = "settlement_unit", "alliance_a"


def _unit_claims(value, user):
    result = None
    if value.isdigit():
        result = restrict(UnitResult.objects.select_related("run"), user).filter(pk=value).first()
    if result is None:
        return None, "无权查看"
    run = result.run
    rule = get_rule(run.scheme)
    try:
        params = from_json(rule.params_class, run.parameters)
    except ValidationError:
        return None, "无权查看"
    claims = rule.claims_for_unit(RunContext(run.scheme, run.year, run.region_code), params, result.unit_code)
    return claims, f"{result.unit_name or result.unit_code}（{run}）"


def _alliance_claims(value, user):
    """`alliance_a=<alliance id>-<year>`: the claims behind an alliance's A of a year (the dashboard)."""
    pk, _, year = value.partition("-")
    alliance = None
    if pk.isdigit() and year.isdigit() and 2000 <= int(year) <= 2100:
        alliance = restrict(Alliance.objects.all(), user).filter(pk=pk).first()
    if alliance is None:
        return None, "无权查看"
    rule = get_rule("alliance_budget")
    claims = rule.claims_for_unit(RunContext("alliance_budget", int(year)), defaults_of(rule.params_class), alliance.code)
    return claims, f"{alliance.name}{year}年度实际支出A"


def statement_claims(request):
    """(claims of the A a drill-down names, unscoped; its label), or (None, None) without a drill-down.

    An unknown or out-of-scope unit gives (none(), "无权查看"): the same answer either way, no probing.
    Resolved once per request (the changelist asks several times).
    """
    key = (request.GET.get(UNIT_PARAM), request.GET.get(ALLIANCE_PARAM))
    cached = getattr(request, "_statement_claims", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    answer = None, None
    for param, resolve in ((UNIT_PARAM, _unit_claims), (ALLIANCE_PARAM, _alliance_claims)):
        value = request.GET.get(param)
        if value:
            claims, label = resolve(value, request.user)
            answer = (OutpatientClaim.objects.none() if claims is None else claims), label
            break
    request._statement_claims = (key, answer)
    return answer


def is_export(request):
    match = getattr(request, "resolver_match", None)
    return bool(match and match.url_name and match.url_name.endswith("_export"))


class StatementDrilldownMixin:
    """For the claims admin: a drill-down lists every claim of the statement's A, read-only."""

    def get_queryset(self, request):
        claims, _ = statement_claims(request)
        if claims is None:
            return super().get_queryset(request)
        if is_export(request):
            # A file carries ID numbers in full: exports stay within the reader's own scope.
            return super().get_queryset(request).filter(pk__in=claims.values("pk"))
        # Deliberately not restrict(): the statement's reader may list all of its A (see above).
        base = self.model._default_manager.get_queryset()
        ordering = self.get_ordering(request)
        if ordering:
            base = base.order_by(*ordering)
        return base.filter(pk__in=claims.values("pk"))

    def get_list_display_links(self, request, list_display):
        # Claims outside the reader's own scope are listed, never opened: their pages stay scoped.
        claims, _ = statement_claims(request)
        if claims is not None and not scope_for(request.user).sees_all:
            return None
        return super().get_list_display_links(request, list_display)

    def get_actions(self, request):
        claims, _ = statement_claims(request)
        if claims is not None and not scope_for(request.user).sees_all:
            return {}
        return super().get_actions(request)


class StatementFilter(admin.SimpleListFilter):
    """Names the statement a drill-down stands for; the narrowing itself is in get_queryset."""

    title = "结算单位"
    parameter_name = UNIT_PARAM

    def lookups(self, request, model_admin):
        value = self.value()
        if not value:
            return []
        _, label = statement_claims(request)
        return [(value, label)]

    def queryset(self, request, queryset):
        return queryset


class AllianceActualFilter(StatementFilter):
    title = "医共体实际支出A"
    parameter_name = ALLIANCE_PARAM
