"""Small builders for test data. Each returns a saved object with valid codes."""
import datetime
import itertools
from decimal import Decimal

from alliances.models import Alliance, Institution, InstitutionLevel, Membership, Region
from contracts.models import Contract, Disease, DiseaseCategory, FamilyDoctorTeam, InsuranceType, InsuredPerson
from contracts.validators import build_resident_id

_counter = itertools.count(1)

CITY_CODE = "330500"


def region(code="330502", name="吴兴区", parent=None):
    if parent is None and code != CITY_CODE:
        parent, _ = Region.objects.get_or_create(code=CITY_CODE, defaults={"name": "湖州市"})
    obj, _ = Region.objects.get_or_create(code=code, defaults={"name": name, "parent": parent})
    return obj


def institution(county=None, level=InstitutionLevel.SECONDARY, code=None, name=None, **fields):
    county = county or region()
    number = next(_counter)
    code = code or f"H{county.code}{number:05d}"
    return Institution.objects.create(
        code=code, name=name or f"测试医院{number}", county=county, level=level, **fields,
    )


def alliance(lead=None, members=(), joined=datetime.date(2020, 1, 1), code=None, county=None):
    lead = lead or institution(county=county)
    number = next(_counter)
    obj = Alliance.objects.create(
        code=code or f"YGT{number:04d}", name=f"测试医共体{number}", county=lead.county, lead_hospital=lead,
    )
    for inst in (lead, *members):
        Membership.objects.create(alliance=obj, institution=inst, joined_on=joined)
    return obj


def person(county=None, birth=datetime.date(1970, 5, 17), sex="M", insurance_type=InsuranceType.RESIDENT, name=None):
    county = county or region()
    number = next(_counter)
    id_number = build_resident_id(county.code, birth, number % 500, sex)
    while InsuredPerson.objects.filter(id_number=id_number).exists():
        number = next(_counter)
        id_number = build_resident_id(county.code, birth, number % 500, sex)
    return InsuredPerson.objects.create(
        id_number=id_number, name=name or f"参保人{number}", insurance_type=insurance_type, county=county,
    )


def disease(code=None, category=DiseaseCategory.CHRONIC, name=None):
    number = next(_counter)
    return Disease.objects.create(code=code or f"D{number:04d}", name=name or f"病种{number}", category=category)


def team(inst=None, name=None):
    inst = inst or institution()
    return FamilyDoctorTeam.objects.create(institution=inst, name=name or f"团队{next(_counter)}")


def contract(person_obj, inst, start, end=None, verified_on=None, package=None):
    return Contract.objects.create(
        person=person_obj, team=team(inst), start=start, end=end, verified_on=verified_on, package=package,
    )


def money(text):
    return Decimal(text)
