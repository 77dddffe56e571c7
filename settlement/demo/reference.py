"""Master data of the demo city: regions, institutions, alliances with dated memberships,
service packages, the disease catalogue and family-doctor teams.

These tables are small (at most a few thousand rows), so they are written through the ORM with
`bulk_create_with_history`: the auditor's change history shows where the demo master data came from.
"""
import dataclasses
import datetime
import random
from decimal import Decimal

from django.db.models import Max
from simple_history.utils import bulk_create_with_history

from alliances.models import (
    Alliance, AllianceKind, BudgetStatus, GrassrootsKind, Institution, InstitutionLevel, Membership, Region,
)
from contracts.models import Disease, FamilyDoctorTeam, ServicePackage, ServicePackageItem

from . import catalogue as cat

LEVEL_RANK = {"基层": 0, "一级": 1, "二级": 2, "三级": 3}
CENTER_KINDS = (GrassrootsKind.TOWNSHIP, GrassrootsKind.COMMUNITY_CENTER)


@dataclasses.dataclass
class Inst:
    """What the population generator needs to know about one institution (index = position)."""

    pk: int
    code: str
    county: int  # index into City.counties
    level: str
    grassroots_kind: str
    tag: str
    alliance: int = -1  # index into City.alliances as of the second half of the year, -1 = none
    teams: list = dataclasses.field(default_factory=list)

    @property
    def rank(self):
        return LEVEL_RANK[self.level]

    @property
    def band(self):
        return InstitutionLevel.band(self.level)


@dataclasses.dataclass
class County:
    code: str
    name: str
    pk: int
    weight: int
    hospitals: list = dataclasses.field(default_factory=list)  # 二级 and 三级
    primary: list = dataclasses.field(default_factory=list)  # 一级
    centers: list = dataclasses.field(default_factory=list)  # 乡镇卫生院 / 社区卫生服务中心
    stations: list = dataclasses.field(default_factory=list)  # 村卫生室 / 社区卫生服务站
    alliances: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class AllianceInfo:
    pk: int
    code: str
    county: int
    lead: int
    members: list


@dataclasses.dataclass
class City:
    year: int
    counties: list
    institutions: list
    alliances: list
    disease_ids: dict  # code → pk
    default_package: tuple  # (pk, fee 分)
    packages: dict  # code → (pk, fee 分)
    psychiatric: list  # institution indexes tagged "psy"
    rehabilitation: list


def _fen(amount):
    return int(Decimal(amount) * 100)


def build_reference(size, year, log):
    rng = random.Random(f"demo-reference-{year}")
    city_region, _ = Region.objects.get_or_create(code=cat.CITY[0], defaults={"name": cat.CITY[1]})
    counties = []
    for code, name, weight, _towns in cat.COUNTIES:
        region, _ = Region.objects.get_or_create(code=code, defaults={"name": name, "parent": city_region})
        counties.append(County(code=code, name=name, pk=region.pk, weight=weight))

    packages, default_package = _packages()
    disease_ids = _diseases()
    institutions = _institutions(size, year, rng, counties)
    alliances = _alliances(size, year, rng, counties, institutions)
    _teams(size, rng, institutions)
    log(f"  主数据：{len(counties) + 1} 个区划，{len(institutions)} 家机构，{len(alliances)} 个医共体，"
        f"{sum(len(i.teams) for i in institutions)} 个家庭医生团队，{len(disease_ids)} 个病种")
    city = City(
        year=year, counties=counties, institutions=institutions, alliances=alliances, disease_ids=disease_ids,
        default_package=default_package, packages=packages,
        psychiatric=[n for n, i in enumerate(institutions) if i.tag == "psy"],
        rehabilitation=[n for n, i in enumerate(institutions) if i.tag == "rehab"],
    )
    return city


def _packages():
    default = ServicePackage.default()
    if default is None:  # the migration seeds it; recreate only if someone removed it
        default = ServicePackage.objects.create(
            code="JC2021", name="基础服务包（攀枝花2021）", fee=Decimal("100.00"), is_default=True,
        )
    packages = {}
    for code, name, fee, items in cat.PACKAGES:
        package, created = ServicePackage.objects.get_or_create(
            code=code, defaults={"name": name, "fee": Decimal(fee) / 100},
        )
        if created:
            ServicePackageItem.objects.bulk_create(
                ServicePackageItem(package=package, name=n, content=c, times_per_year=t, price=Decimal(p) / 100)
                for n, c, t, p in items
            )
        packages[code] = (package.pk, _fen(package.fee))
    return packages, (default.pk, _fen(default.fee))


def _diseases():
    wanted = [(c, n, k, "") for c, n, k in cat.CHRONIC + cat.SPECIAL + cat.SPECIAL_CLASS1]
    wanted += [(c, n, k, "") for c, n, k, _profile, _std in cat.SPECIAL_CLASS2]
    wanted += [(c, n, "按病种付费", op) for c, n, op, _std in cat.PER_DISEASE]
    wanted += [(c, n, k, "") for c, n, k, _cat in cat.BED_DAY_DISEASES]
    existing = set(Disease.objects.filter(code__in=[w[0] for w in wanted]).values_list("code", flat=True))
    bulk_create_with_history(
        [Disease(code=c, name=n, category=k, main_operation=op) for c, n, k, op in wanted if c not in existing],
        Disease,
    )
    return dict(Disease.objects.filter(code__in=[w[0] for w in wanted]).values_list("code", "pk"))


def _village_names(count, salt):
    names = []
    firsts, seconds = cat.VILLAGE_FIRST, cat.VILLAGE_SECOND
    for n in range(count):
        k = n + salt
        names.append(firsts[(k * 7) % len(firsts)] + seconds[(k // len(firsts) + n) % len(seconds)])
    return list(dict.fromkeys(names))[:count]


def _institutions(size, year, rng, counties):
    objs, infos = [], []

    def add(county_index, level, kind, public, name, grassroots_kind="", tag=""):
        county = counties[county_index]
        code = f"H{county.code}{len([i for i in infos if i.county == county_index]) + 1:05d}"
        since = datetime.date(rng.randint(1998, year - 2), rng.choice((1, 4, 7, 10)), 1)
        objs.append(Institution(
            code=code, name=name, county_id=county.pk, level=level, grassroots_kind=grassroots_kind,
            kind=kind, is_public=public, designated_from=since,
        ))
        infos.append(Inst(pk=0, code=code, county=county_index, level=level, grassroots_kind=grassroots_kind, tag=tag))
        index = len(infos) - 1
        if level in ("二级", "三级"):
            county.hospitals.append(index)
        elif level == "一级":
            county.primary.append(index)
        elif grassroots_kind in CENTER_KINDS:
            county.centers.append(index)
        else:
            county.stations.append(index)
        return index

    for ci, (_code, county_name, _w, towns) in enumerate(cat.COUNTIES):
        hospitals = cat.county_hospitals(county_name)[: size.hospitals_per_county]
        for level, kind, public, name, _lead, tag in hospitals:
            add(ci, level, kind, public, name, tag=tag)
        for n, (suffix, kind) in enumerate(cat.PRIVATE_PRIMARY[: size.private_per_county]):
            add(ci, "一级", kind, False, f"{county_name[:-1]}{suffix}" if n % 2 else f"{county_name}{suffix}")
        chosen = towns if size.towns_per_county is None else towns[: size.towns_per_county]
        for t, town in enumerate(chosen):
            street = town.endswith("街道")
            center_kind = GrassrootsKind.COMMUNITY_CENTER if street else GrassrootsKind.TOWNSHIP
            center_name = f"{county_name}{town}{'社区卫生服务中心' if street else '卫生院'}"
            add(ci, "基层", "综合", True, center_name, center_kind)
            station_kind = GrassrootsKind.COMMUNITY_STATION if street else GrassrootsKind.VILLAGE
            for village in _village_names(size.stations_per_town, salt=ci * 31 + t * 7):
                suffix = f"{village}社区卫生服务站" if street else f"{village}村卫生室"
                add(ci, "基层", "综合", True, f"{county_name}{town}{suffix}", station_kind)
    created = bulk_create_with_history(objs, Institution, batch_size=500)
    pks = dict(Institution.objects.filter(code__in=[o.code for o in created]).values_list("code", "pk"))
    for info in infos:
        info.pk = pks[info.code]
    return infos


def _alliances(size, year, rng, counties, institutions):
    """One or more alliances per county, each led by a 二级/三级 hospital that is listed as a member."""
    alliance_objs, plans = [], []
    for ci, county in enumerate(counties):
        hospitals = cat.county_hospitals(county.name)[: size.hospitals_per_county]
        # county.hospitals lists the county's 二级/三级 institutions in the order of `hospitals`.
        positions = [n for n, h in enumerate(hospitals) if h[4]][: size.alliances_per_county[ci]]
        leads = [county.hospitals[p] for p in positions]
        # SPEC §6.4: where a county has several alliances, its first county alliance (医共体, not the
        # 城市医联体) is the default one that covers the residents without a contract with any of them.
        default_k = (1 if county.name == "吴兴区" else 0) if len(leads) > 1 else None
        for k, (position, lead) in enumerate(zip(positions, leads)):
            city_kind = county.name == "吴兴区" and k == 0
            name = hospitals[position][3]
            code = f"YGT{county.code}{k + 1:02d}"
            status = BudgetStatus.APPROVED
            if (ci + k) % 5 == 4:
                status = BudgetStatus.APPLIED if k % 2 else BudgetStatus.HEALTH_CONFIRMED
            alliance_objs.append(Alliance(
                code=code, name=f"{name}{'城市医联体' if city_kind else '医共体'}", county_id=county.pk,
                kind=AllianceKind.CITY if city_kind else AllianceKind.COUNTY, lead_hospital_id=institutions[lead].pk,
                budget_status=status, is_default=k == default_k,
                budget_effective_from=datetime.date(year, 1, 1) if status == BudgetStatus.APPROVED else None,
            ))
            plans.append(AllianceInfo(pk=0, code=code, county=ci, lead=lead, members=[lead]))
            county.alliances.append(len(plans) - 1)
        # Members: towns (centre + its stations) dealt round-robin; public specialist hospitals, and the
        # public 二级 hospitals that lead nothing in a single-alliance county, join too; private ones stay out.
        own = county.alliances
        public = {county.hospitals[n] for n, h in enumerate(hospitals) if h[2]}
        others = [i for i in county.hospitals if i not in leads and i in public]
        for n, index in enumerate(county.centers):
            plans[own[n % len(own)]].members.append(index)
        for index in county.stations:
            center = max(c for c in county.centers if c < index)
            plans[own[county.centers.index(center) % len(own)]].members.append(index)
        for n, index in enumerate(others):
            if institutions[index].tag in ("psy", "mch") or (len(own) == 1 and institutions[index].level == "二级"):
                plans[own[n % len(own)]].members.append(index)
    created = bulk_create_with_history(alliance_objs, Alliance)
    pks = dict(Alliance.objects.filter(code__in=[a.code for a in created]).values_list("code", "pk"))

    memberships = []
    for ai, plan in enumerate(plans):
        plan.pk = pks[plan.code]
        founded = datetime.date(2019 + ai % 3, 1 if ai % 2 == 0 else 7, 1)
        for m, index in enumerate(plan.members):
            institutions[index].alliance = ai
            joined = founded
            if m and m % 9 == 0:
                joined = datetime.date(year - 1, rng.randint(1, 12), 1)
            if m and m % 23 == 0:  # a newcomer during the demo year
                joined = datetime.date(year, 4, 1)
            memberships.append(Membership(alliance_id=plan.pk, institution_id=institutions[index].pk, joined_on=joined))
    # One institution per county with two or more alliances moves to a sibling alliance on 1 July.
    for county in counties:
        if len(county.alliances) < 2:
            continue
        source, target = plans[county.alliances[0]], plans[county.alliances[1]]
        mover = next(i for i in source.members if institutions[i].grassroots_kind in CENTER_KINDS)
        for membership in memberships:
            if membership.institution_id == institutions[mover].pk:
                membership.left_on = datetime.date(year, 6, 30)
        memberships.append(Membership(
            alliance_id=target.pk, institution_id=institutions[mover].pk, joined_on=datetime.date(year, 7, 1),
        ))
        source.members.remove(mover)
        target.members.append(mover)
        institutions[mover].alliance = county.alliances[1]
    bulk_create_with_history(memberships, Membership, batch_size=500)
    return plans


def _teams(size, rng, institutions):
    objs, owners = [], []
    for index, inst in enumerate(institutions):
        if inst.grassroots_kind in CENTER_KINDS:
            count = size.teams_per_center
        elif inst.grassroots_kind and size.teams_per_station:
            count = size.teams_per_station
        else:
            continue
        for t in range(count):
            doctor = rng.choice(cat.SURNAMES) + rng.choice(cat.DOCTOR_NAMES)
            objs.append(FamilyDoctorTeam(
                institution_id=inst.pk, name=f"第{t + 1}家庭医生团队（{doctor}）", lead_doctor=doctor,
            ))
            owners.append(index)
    bulk_create_with_history(objs, FamilyDoctorTeam, batch_size=500)
    ids = {
        (inst_id, name): pk
        for pk, inst_id, name in FamilyDoctorTeam.objects.filter(
            institution_id__in=[institutions[i].pk for i in set(owners)]
        ).values_list("pk", "institution_id", "name")
    }
    for obj, index in zip(objs, owners):
        institutions[index].teams.append(ids[(obj.institution_id, obj.name)])


def next_ids(model):
    """The first free primary key of a table: the generator numbers its rows itself."""
    return (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
