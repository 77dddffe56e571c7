"""KPIs of the global budget (KF §3, SPEC §6.4), per county, alliance or institution and year.

Moved here from alliances/ (issue 16): they read claims, cases and the engine's case classification,
which the lowest app may not import.

Selectors only: every figure comes from a handful of GROUP BY queries over claims, cases,
contracts and insured persons, never from a loop over rows. Callers pass the units already
limited with `restrict()`; a figure describes the whole unit, so it may rest on rows (e.g. a
county's residents treated in another county) the caller cannot list one by one.

Two bases, documented because the choice changes the numbers:
- population KPIs (县域内就诊率, 基层就诊率, and the denominator of 签约率) count what happens to the
  unit's insured persons wherever they are treated. A county's are those insured in it; an
  alliance's those it covers (SPEC §6.4 Coverage, contracts/coverage.py: by verified contract, else
  the county's default alliance), so that no person counts for two alliances of one county; an
  institution takes its county's figure.
- provider KPIs (费用增长, 个人负担, 转诊, 次均费用增长, 床日) count care given by the unit's
  institutions: those in the county, the alliance's members on the day of care, or the institution.
Rates and growths are percentages rounded half-up to 0.01 once; None (无数据) when a denominator is
zero or, for the provider KPIs, when the unit gave no care at all in the year.
"""
import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Count, F, Func, IntegerField, Q, Sum, Value
from django.db.models.functions import Coalesce, Greatest

from alliances.budget_models import Kpi
from alliances.models import InstitutionLevel
from contracts.coverage import COVERAGE_SQL, coverage_params
from contracts.models import Contract, InsuredPerson, PersonStatus
from settlement.engine.schemes.inpatient_common import DISEASE, classified_cases_sql, fetch_dicts
from settlement.models import InpatientCase, OutpatientClaim

CENT = Decimal("0.01")
HUNDRED = Decimal("100")
ZERO = Decimal("0")
PRIMARY_LEVELS = (InstitutionLevel.PRIMARY, InstitutionLevel.GRASSROOTS)

COUNTY, ALLIANCE, INSTITUTION = "county", "alliance", "institution"


def q2(value):
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def percent(numerator, denominator):
    if not denominator:
        return None
    return q2(HUNDRED * Decimal(numerator) / Decimal(denominator))


def growth(current, previous):
    if not previous:
        return None
    return q2(HUNDRED * (Decimal(current) - Decimal(previous)) / Decimal(previous))


@dataclass
class UnitKpis:
    """One unit's KPI values (Kpi value → number or None) and the sums behind them."""

    values: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)


def disease_exit_rate(year, level, unit_ids):
    """病种退出率: approved 退出按病种付费 exits / per-disease cases of the year (by discharge date), per
    unit (the county's, the alliance members' on the discharge day, or the institution's cases).
    None when the unit had no per-disease case: never an invented number, so that an assessment
    that weights this KPI refuses to score."""
    # Here, not at the top: case_review_services refreshes the KPI pre-aggregates, which read this module.
    from settlement.engine.case_review_services import exited_case_ids
    first, last = _year_range(year)
    unit_sql = {
        COUNTY: ("i.county_id", "JOIN alliances_institution i ON i.id = k.institution_id"),
        INSTITUTION: ("k.institution_id", ""),
        ALLIANCE: ("m.alliance_id", """JOIN alliances_membership m ON m.institution_id = k.institution_id
                    AND m.joined_on <= k.discharge_date AND (m.left_on IS NULL OR m.left_on >= k.discharge_date)"""),
    }
    unit, join = unit_sql[level]
    rows = fetch_dicts(
        f"""SELECT {unit} AS unit, COUNT(*) AS cases,
                   COUNT(*) FILTER (WHERE k.id = ANY(%(exited_ids)s::bigint[])) AS exited
              FROM ({classified_cases_sql(DISEASE)}) k {join}
             WHERE {unit} = ANY(%(unit_ids)s::bigint[])
             GROUP BY {unit}""",
        {"date_from": first, "date_to": last, "exited_ids": sorted(exited_case_ids(year)), "unit_ids": list(unit_ids)},
    )
    found = {row["unit"]: percent(row["exited"], row["cases"]) for row in rows}
    return {pk: found.get(pk) for pk in unit_ids}


# --- Grouping ----------------------------------------------------------------------------------


def _provider_grouped(queryset, level, date_field):
    """queryset.values(unit=…) grouped by the providing unit of each row."""
    if level == COUNTY:
        return queryset.values(unit=F("institution__county_id"))
    if level == INSTITUTION:
        return queryset.values(unit=F("institution_id"))
    # One filter() call so that both date conditions apply to the same membership row.
    in_force = queryset.filter(
        Q(institution__memberships__joined_on__lte=F(date_field))
        & (
            Q(institution__memberships__left_on__isnull=True)
            | Q(institution__memberships__left_on__gte=F(date_field))
        )
    )
    return in_force.values(unit=F("institution__memberships__alliance_id"))


def _by_unit(rows):
    return {row.pop("unit"): row for row in rows}


def _stay_days():
    # SPEC §3: length of stay = discharge − admission in days, at least 1 (PostgreSQL date − date).
    diff = Func(F("discharge_date"), F("admission_date"), template="(%(expressions)s)", arg_joiner=" - ",
                output_field=IntegerField())
    return Greatest(diff, Value(1))


def _year_range(year):
    return datetime.date(year, 1, 1), datetime.date(year, 12, 31)


def provider_sums(year, level):
    """unit → sums of the care given by the unit's institutions in the year."""
    first, last = _year_range(year)
    money0 = Value(ZERO)
    claims = _by_unit(
        _provider_grouped(OutpatientClaim.objects.filter(visit_date__range=(first, last)), level, "visit_date")
        .order_by()
        .annotate(
            claims=Count("id"),
            claim_total=Coalesce(Sum("total_cost"), money0),
            claim_personal=Coalesce(Sum("personal_paid"), money0),
            referrals=Count("id", filter=Q(referral=True)),
        )
    )
    cases = _by_unit(
        _provider_grouped(InpatientCase.objects.filter(discharge_date__range=(first, last)), level, "discharge_date")
        .order_by()
        .annotate(
            cases=Count("id"),
            case_total=Coalesce(Sum("total_cost"), money0),
            case_personal=Coalesce(Sum("personal_paid"), money0),
            transfers=Count("id", filter=Q(transferred=True)),
            bed_day_cases=Count("id", filter=~Q(bed_day_category="")),
            bed_days=Coalesce(Sum(_stay_days(), filter=~Q(bed_day_category="")), 0),
            bed_day_total=Coalesce(Sum("total_cost", filter=~Q(bed_day_category="")), money0),
        )
    )
    out = defaultdict(lambda: defaultdict(lambda: ZERO))
    for source in (claims, cases):
        for unit, row in source.items():
            out[unit].update(row)
    return out


def population_sums(year):
    """county id → what happened to the county's insured persons in the year, wherever treated."""
    first, last = _year_range(year)
    same_county = Q(institution__county_id=F("person__county_id"))
    claims = _by_unit(
        OutpatientClaim.objects.filter(visit_date__range=(first, last))
        .values(unit=F("person__county_id")).order_by()
        .annotate(
            visits=Count("id"),
            visits_in_county=Count("id", filter=same_county),
            visits_primary=Count("id", filter=Q(institution__level__in=PRIMARY_LEVELS)),
        )
    )
    cases = _by_unit(
        InpatientCase.objects.filter(discharge_date__range=(first, last))
        .values(unit=F("person__county_id")).order_by()
        .annotate(stays=Count("id"), stays_in_county=Count("id", filter=same_county))
    )
    insured = _by_unit(
        InsuredPerson.objects.filter(status=PersonStatus.ACTIVE).values(unit=F("county_id")).order_by()
        .annotate(insured=Count("id"))
    )
    out = defaultdict(lambda: defaultdict(int))
    for source in (claims, cases, insured):
        for unit, row in source.items():
            out[unit].update(row)
    return out


def alliance_population_sums(year):
    """alliance id → what happened to the persons the alliance covers (any insurance type) in the year."""
    first, last = _year_range(year)
    cov = f"({COVERAGE_SQL}) cov"
    queries = {
        "claims": (f"""SELECT cov.alliance_id, COUNT(*),
                              COUNT(*) FILTER (WHERE i.county_id = cov.county_id),
                              COUNT(*) FILTER (WHERE i.level = ANY(%s))
                         FROM settlement_outpatientclaim c JOIN {cov} ON cov.person_id = c.person_id
                         JOIN alliances_institution i ON i.id = c.institution_id
                        WHERE c.visit_date BETWEEN %s AND %s GROUP BY 1""",
                   ("visits", "visits_in_county", "visits_primary")),
        "cases": (f"""SELECT cov.alliance_id, COUNT(*), COUNT(*) FILTER (WHERE i.county_id = cov.county_id)
                        FROM settlement_inpatientcase c JOIN {cov} ON cov.person_id = c.person_id
                        JOIN alliances_institution i ON i.id = c.institution_id
                       WHERE c.discharge_date BETWEEN %s AND %s GROUP BY 1""",
                  ("stays", "stays_in_county")),
        "insured": (f"SELECT cov.alliance_id, COUNT(*) FROM {cov} WHERE cov.status = %s GROUP BY 1", ("insured",)),
    }
    params = {
        # In the order of the placeholders: the level list sits in the SELECT, before the subquery.
        "claims": [list(PRIMARY_LEVELS), *coverage_params(year), first, last],
        "cases": [*coverage_params(year), first, last],
        "insured": [*coverage_params(year), PersonStatus.ACTIVE],
    }
    out = defaultdict(lambda: defaultdict(int))
    with connection.cursor() as cursor:
        for name, (sql, columns) in queries.items():
            cursor.execute(sql, params[name])
            for alliance_id, *figures in cursor.fetchall():
                out[alliance_id].update(zip(columns, figures))
    return out


def signed_persons(year, level):
    """unit → persons insured in the unit's county with a verified contract in force on 31 December
    at one of the unit's institutions."""
    _, last = _year_range(year)
    contracts = Contract.objects.filter(
        start__lte=last, verified_on__isnull=False, verified_on__lte=last, person__status=PersonStatus.ACTIVE,
        person__county_id=F("institution__county_id"),
    ).filter(Q(end__isnull=True) | Q(end__gte=last))
    if level == ALLIANCE:
        contracts = contracts.annotate(on_day=Value(last))
        grouped = _provider_grouped(contracts, level, "on_day")
    else:
        grouped = _provider_grouped(contracts, level, None)
    return {
        row["unit"]: row["persons"]
        for row in grouped.order_by().annotate(persons=Count("person_id", distinct=True))
    }


# --- KPIs ------------------------------------------------------------------------------------


class RawSource:
    """The figures computed from the raw claims, cases, contracts and persons: the reference."""

    provider_sums = staticmethod(provider_sums)
    population_sums = staticmethod(population_sums)
    alliance_population_sums = staticmethod(alliance_population_sums)
    signed_persons = staticmethod(signed_persons)
    disease_exit_rate = staticmethod(disease_exit_rate)


RAW = RawSource()


def assemble(unit_ids, county_of, level, year, source=RAW):
    """{unit id: UnitKpis} of units already chosen (ids; county_of: unit id → its county id, the
    unit itself for alliances and counties), from `source`'s selectors."""
    now, before = source.provider_sums(year, level), source.provider_sums(year - 1, level)
    if level == ALLIANCE:
        population, county_of = source.alliance_population_sums(year), {pk: pk for pk in unit_ids}
    else:
        population = source.population_sums(year)
    signed = source.signed_persons(year, level)
    exits = source.disease_exit_rate(year, level, unit_ids)
    result = {}
    for pk in unit_ids:
        p, prev, pop = now.get(pk, {}), before.get(pk, {}), population.get(county_of[pk], {})
        total = p.get("claim_total", ZERO) + p.get("case_total", ZERO)
        personal = p.get("claim_personal", ZERO) + p.get("case_personal", ZERO)
        prev_total = prev.get("claim_total", ZERO) + prev.get("case_total", ZERO)
        avg_visit = (p["claim_total"] / p["claims"]) if p.get("claims") else None
        prev_avg_visit = (prev["claim_total"] / prev["claims"]) if prev.get("claims") else None
        bed_days = p.get("bed_days", 0)
        # A unit that gave no care in the year has no provider figures: 无数据, never a −100% growth
        # (or a zero count) that a target would call 达标.
        cared = bool(p.get("claims") or p.get("cases"))
        values = {
            Kpi.COUNTY_VISIT_RATE: percent(
                pop.get("visits_in_county", 0) + pop.get("stays_in_county", 0), pop.get("visits", 0) + pop.get("stays", 0),
            ),
            Kpi.GRASSROOTS_VISIT_RATE: percent(pop.get("visits_primary", 0), pop.get("visits", 0)),
            Kpi.TOTAL_COST_GROWTH: growth(total, prev_total) if cared else None,
            Kpi.PERSONAL_BURDEN: percent(personal, total),
            Kpi.SIGNING_RATE: percent(signed.get(pk, 0), pop.get("insured", 0)),
            Kpi.REFERRALS: int(p.get("referrals", 0)) + int(p.get("transfers", 0)) if cared else None,
            Kpi.OUTPATIENT_COST_GROWTH: (
                growth(avg_visit, prev_avg_visit) if avg_visit is not None and prev_avg_visit else None
            ),
            Kpi.DISEASE_EXIT_RATE: exits.get(pk),
            Kpi.BED_DAY_AVERAGE_STAY: q2(Decimal(bed_days) / p["bed_day_cases"]) if p.get("bed_day_cases") else None,
            Kpi.BED_DAY_DAILY_COST: q2(p["bed_day_total"] / bed_days) if bed_days else None,
        }
        inputs = {
            "total_cost": total, "previous_total_cost": prev_total, "personal_paid": personal,
            "visits": pop.get("visits", 0), "visits_in_county": pop.get("visits_in_county", 0),
            "visits_primary": pop.get("visits_primary", 0), "stays": pop.get("stays", 0),
            "stays_in_county": pop.get("stays_in_county", 0), "insured": pop.get("insured", 0),
            "signed": signed.get(pk, 0), "outpatient_referrals": int(p.get("referrals", 0)),
            "inpatient_transfers": int(p.get("transfers", 0)), "bed_day_cases": int(p.get("bed_day_cases", 0)),
            "bed_days": int(bed_days),
        }
        result[pk] = UnitKpis({str(k): v for k, v in values.items()}, inputs)
    return result


def county_kpis(year, counties, source=RAW):
    """counties: a (restricted) Region queryset → {region id: UnitKpis}; `source` RAW or an object with
    the same selectors read from pre-aggregates (settlement.kpi_aggregates.selectors)."""
    ids = list(counties.values_list("pk", flat=True))
    return assemble(ids, {pk: pk for pk in ids}, COUNTY, year, source)


def alliance_kpis(year, alliances, source=RAW):
    """alliances: a (restricted) Alliance queryset → {alliance id: UnitKpis}."""
    county_of = dict(alliances.values_list("pk", "county_id"))
    return assemble(list(county_of), county_of, ALLIANCE, year, source)


def institution_kpis(year, institutions, source=RAW):
    county_of = dict(institutions.values_list("pk", "county_id"))
    return assemble(list(county_of), county_of, INSTITUTION, year, source)


def unit_kpis(level, year, units, source=RAW):
    """{unit pk: UnitKpis} of alliances or institutions: what alliances' assessment scoring reads."""
    return {ALLIANCE: alliance_kpis, INSTITUTION: institution_kpis}[level](year, units, source)
