"""Links from a dashboard figure to the changelist query behind it.

The changelists apply the user's scope themselves, so a link never shows more than its reader may
see. Django admin refuses filters that cross more than one relation unless the admin allows
them: `DrilldownLookupsMixin` allows exactly the ones built here.
"""
import datetime
import functools
from urllib.parse import urlencode

from django.urls import reverse

from alliances.models import InstitutionLevel

DRILLDOWN_LOOKUPS = {
    "person__county__code",
    "person__insurance_type__exact",
    "institution__level__in",
}


class DrilldownLookupsMixin:
    """For OutpatientClaim / InpatientCase admins: accept the dashboard's drill-down filters."""

    def lookup_allowed(self, lookup, value, request=None):
        if lookup in DRILLDOWN_LOOKUPS:
            return True
        return super().lookup_allowed(lookup, value, request)


@functools.lru_cache(maxsize=None)
def _path(name):
    # A changelist's path never changes while the process runs; the dashboard asks for it ~500 times.
    return reverse(name)


def _url(name, params):
    return f"{_path(name)}?{urlencode(params)}"


def _period(field, first, last):
    return {f"{field}__gte": first.isoformat(), f"{field}__lte": last.isoformat()}


def providers(institution_ids):
    # By id, a lookup every admin accepts (contracts' included) without extra allowances.
    return {"institution__id__in": ",".join(str(pk) for pk in sorted(institution_ids)) or "0"}


def claims(first, last, **params):
    return _url("admin:settlement_outpatientclaim_changelist", {**_period("visit_date", first, last), **params})


def cases(first, last, **params):
    return _url("admin:settlement_inpatientcase_changelist", {**_period("discharge_date", first, last), **params})


def contracts(**params):
    return _url("admin:contracts_contract_changelist", params)


def actual_claims(alliance_id, year, first, last):
    """The claims behind an alliance's A of `year` between two days (SPEC §6.4 Coverage); the claims
    admin resolves `alliance_a` for whoever may see the alliance."""
    return claims(first, last, alliance_a=f"{alliance_id}-{year}")


def kpi_links(year, county_code, provider_params):
    """Kpi value → URL of the rows the figure is computed from."""
    first, last = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    primary = ",".join([InstitutionLevel.PRIMARY, InstitutionLevel.GRASSROOTS])
    return {
        "county_visit_rate": claims(first, last, person__county__code=county_code),
        "grassroots_visit_rate": claims(first, last, person__county__code=county_code, institution__level__in=primary),
        "total_cost_growth": claims(first, last, **provider_params),
        "personal_burden": claims(first, last, **provider_params),
        "signing_rate": contracts(verified_on__isnull="False", **provider_params),
        "referrals": claims(first, last, referral__exact="1", **provider_params),
        "outpatient_cost_growth": claims(first, last, **provider_params),
        "bed_day_average_stay": cases(first, last, bed_day_category__in="精神,安宁疗护,康复", **provider_params),
        "bed_day_daily_cost": cases(first, last, bed_day_category__in="精神,安宁疗护,康复", **provider_params),
    }
