"""The demo's supervision side (SPEC §9): a known number of each audit pattern, so every rule has
findings to show on the demo.

The outpatient patterns sit at the out-of-city hospital of the benefit demo and two more out-of-city
hospitals, as employee 特病门诊 (in no scheme's actual spending). Every inpatient case belongs to some
inpatient scheme, so the inpatient patterns sit at one in-city 二级 hospital (the one with the fewest
ES2 cases, so its planted ES21 stand out for UPC01) and join its DRG pool, on persons of its county.
All on 职工 persons without contract, relocation filing or referral, paid exactly what the benefit
table says (out of the city, unreferred: the table's ratio − the `benefits` policy's out-of-city
points; in the county: the table's ratio), so BEN01 does not see them and the benefit demo's known
differences stay what they were. They are written before 应付统筹 is computed. Serials start with `JC`. DUP01 … FRQ02 are planted here; BEN01, REL01 and SRV01 are
planted elsewhere: the benefit demo's known differences and double filings (benefits.py), the 25% of
verified contracts the population gives no service (population.py).
"""
import datetime
from decimal import Decimal

from alliances.models import Institution, InstitutionLevel
from contracts.models import Contract, InsuredPerson
from settlement.benefits.models import BenefitRule, Referral, Relocation
from settlement.benefits.params import BenefitParams
from django.db.models import Count, Q

from settlement.models import DischargeMode, DrgGroup, InpatientCase, OutpatientClaim

# rule → findings planted (the demo test asserts these figures).
PLANTED = {"DUP01": 4, "SPL01": 3, "LOW01": 3, "HIC01": 3, "UPC01": 1, "FRQ01": 2, "FRQ02": 2}
SERIAL_PREFIX = "JC"
UPCODING_CASES = 20  # UPC01's default minimum of cases
EMPLOYEE = "职工"
_DIAGNOSES = {"GD19": "K35.9", "ES21": "J15.9"}  # as the catalogue's groups
VISIT_TYPE = "特病门诊"  # employee 特病门诊 is in no scheme's actual spending


def _persons(count, **where):
    """Employees with no contract, relocation filing or referral, lowest ids first (deterministic)."""
    return list(
        InsuredPerson.objects.filter(insurance_type=EMPLOYEE, **where)
        .exclude(pk__in=Contract.objects.values("person_id"))
        .exclude(pk__in=Relocation.objects.values("person_id"))
        .exclude(pk__in=Referral.objects.values("person_id"))
        .order_by("pk")[:count]
    )


def upcoding_hospital(year):
    """The in-city 二级 hospital with the fewest ES2 cases of the year (then the lowest id)."""
    return (Institution.objects.filter(level=InstitutionLevel.SECONDARY, code__startswith="H33")
            .annotate(es2=Count("inpatient_cases", filter=Q(inpatient_cases__drg_code__startswith="ES2",
                                                            inpatient_cases__discharge_date__year=year)))
            .order_by("es2", "pk").first())


class _Planter:
    def __init__(self, year):
        self.year = year
        points = BenefitParams().out_of_city_points
        self.outpatient = self._ratio("门诊", VISIT_TYPE) - points
        self.inpatient = self._ratio("住院", "")  # in the person's county of insurance
        self.claims, self.cases, self.serial = [], [], 0

    def _ratio(self, care, visit_type):
        return BenefitRule.objects.get(year=self.year, insurance_type=EMPLOYEE, care_type=care,
                                       level=InstitutionLevel.SECONDARY, visit_type=visit_type,
                                       disease_prefix="").ratio

    def _next_serial(self, kind):
        self.serial += 1
        return f"{SERIAL_PREFIX}{kind}{self.year}{self.serial:06d}"

    def _fund(self, cost, ratio):
        # Whole 元 × a ratio of whole points is exact to the 分: what the benefit engine computes.
        return (cost * ratio / 100).quantize(Decimal("0.01"))

    def claim(self, person, hospital, day, cost):
        cost = Decimal(cost)
        fund = self._fund(cost, self.outpatient)
        self.claims.append(OutpatientClaim(
            institution=hospital, serial=self._next_serial("MZ"), person=person, visit_date=day,
            insurance_type=EMPLOYEE, visit_type=VISIT_TYPE, total_cost=cost, fund_paid=fund, personal_paid=cost - fund,
        ))

    def case(self, person, hospital, admitted, days, group, cost):
        """A stay of `days` nights in the DRG group, with the group's usual principal diagnosis."""
        cost = Decimal(cost)
        fund = self._fund(cost, self.inpatient)
        self.cases.append(InpatientCase(
            institution=hospital, serial=self._next_serial("ZY"), person=person, admission_date=admitted,
            discharge_date=admitted + datetime.timedelta(days=days), principal_diagnosis=_DIAGNOSES[group.code],
            drg_code=group.code, total_cost=cost, fund_paid=fund, personal_paid=cost - fund,
            # 医嘱离院, as the demo's other cases carry a 离院方式: no planted stay is a death or a transfer,
            # which LOW01 and SPL01 would exempt.
            discharge_mode=DischargeMode.ORDERED,
        ))


def write_audit_patterns(year, outside):
    """Plant PLANTED's patterns; returns (claims added, cases added)."""
    peers = [Institution.objects.create(code=f"H46010500{k:03d}", name=f"海口市秀英区第{k}医院（市外）",
                                        county=outside.county, level=InstitutionLevel.SECONDARY) for k in (2, 3)]
    hospitals = [outside, *peers]
    planter = _Planter(year)
    groups = {g.code: g for g in DrgGroup.objects.filter(year=year, code__in=["GD19", "ES21"])}
    need = (PLANTED["DUP01"] + PLANTED["SPL01"] + PLANTED["LOW01"] + PLANTED["HIC01"] + UPCODING_CASES
            + PLANTED["FRQ01"] + PLANTED["FRQ02"])
    hospital = upcoding_hospital(year)
    persons = iter(_persons(need, county_id=hospital.county_id))
    day = datetime.date
    gd19 = groups["GD19"]
    average = gd19.average_cost.quantize(Decimal("1"))
    for _ in range(PLANTED["DUP01"]):  # the same visit settled twice
        person = next(persons)
        planter.claim(person, outside, day(year, 4, 8), "300")
        planter.claim(person, outside, day(year, 4, 8), "300")
    for _ in range(PLANTED["SPL01"]):  # readmitted 10 days after discharge, same group
        person = next(persons)
        planter.case(person, hospital, day(year, 3, 1), 6, gd19, average)
        planter.case(person, hospital, day(year, 3, 17), 6, gd19, average)
    for _ in range(PLANTED["LOW01"]):  # 1 day, 20% of the group's average cost
        planter.case(next(persons), hospital, day(year, 5, 10), 1, gd19, (average * Decimal("0.2")).quantize(Decimal("1")))
    for _ in range(PLANTED["HIC01"]):  # 3.5× at a 二级 hospital (limit 2×)
        planter.case(next(persons), hospital, day(year, 6, 10), 9, gd19, (average * Decimal("3.5")).quantize(Decimal("1")))
    es21 = groups["ES21"]
    for k in range(UPCODING_CASES):  # severe ES21 only, at the hospital with the fewest ES2 cases
        planter.case(next(persons), hospital, day(year, 7, 1) + datetime.timedelta(days=k), 5, es21,
                     es21.average_cost.quantize(Decimal("1")))
    for _ in range(PLANTED["FRQ01"]):  # 11 visits in May at one hospital
        person = next(persons)
        for k in range(11):
            planter.claim(person, outside, day(year, 5, 1 + k), "200")
    for _ in range(PLANTED["FRQ02"]):  # three hospitals on one day
        person = next(persons)
        for at in hospitals:
            planter.claim(person, at, day(year, 6, 3), "150")
    OutpatientClaim.objects.bulk_create(planter.claims)
    InpatientCase.objects.bulk_create(planter.cases)
    return len(planter.claims), len(planter.cases)
