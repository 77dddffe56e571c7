"""Insured persons and everything that hangs off one person, generated in chunks of persons.

Each chunk yields plain row tuples per model (ids numbered here, money as exact "元.分" text built
from integer 分, dates as `datetime.date`), so the same rows can go through `bulk_create` (small) or
PostgreSQL COPY (city) and memory stays bounded by the chunk size. Totals the standards and budgets
are calibrated on are accumulated as integer 分 while the rows stream past.

Each person also gets the year before the demo year (`HISTORY_YEARS`) as the bureau's history: the same
people, their contracts and registrations, behaving by the same rules, drawn from random streams of their
own so that every demo-year row is what it would be without the history. The demo year's standards and
budgets are the 测算 of that history (settlement/demo/parameters.py), so the demo year lands on both sides
of them as a real year would.
"""
import array
import collections
import contextlib
import dataclasses
import datetime
import math
import random

from contracts.models import Contract, DiseaseRegistration, InsuredPerson
from contracts.validators import build_resident_id
from settlement.models import FamilyDoctorService, InpatientCase, OutpatientClaim, SpecialDesignation

from . import catalogue as cat
from .reference import LEVEL_RANK

# Column order of the rows each chunk yields (attnames, so they work for COPY and for Model(**row)).
COLUMNS = {
    InsuredPerson: ("id", "id_number", "name", "birth_date", "sex", "insurance_type", "county_id", "status"),
    DiseaseRegistration: ("id", "person_id", "disease_id", "filed_on", "ended_on", "approving_institution_id"),
    Contract: ("id", "person_id", "team_id", "institution_id", "package_id", "start", "end", "verified_on"),
    SpecialDesignation: ("id", "year", "person_id", "disease_id", "institution_id", "signing_institution_id"),
    FamilyDoctorService: ("id", "person_id", "institution_id", "service_date", "item"),
    OutpatientClaim: (
        "id", "institution_id", "serial", "person_id", "visit_date", "insurance_type", "visit_type", "disease_id",
        "total_cost", "fund_paid", "personal_paid", "referral",
    ),
    InpatientCase: (
        "id", "institution_id", "serial", "person_id", "admission_date", "discharge_date", "principal_diagnosis",
        "main_operation", "drg_code", "total_cost", "fund_paid", "personal_paid", "incomplete_stay", "transferred",
        "new_technology", "bed_day_category", "discharge_mode",
    ),
}
# Parents before children: the order rows are written in.
WRITE_ORDER = tuple(COLUMNS)

# Share of deaths among the cases of a DRG subgroup (the code's last digit: 1 伴严重并发症或合并症, 3 伴一般,
# 5 不伴, 9 no split) and of bed-day categories; synthetic, shaped like a city's settlement lists.
DEATH_RATE_BY_SEVERITY = {"1": 0.08, "3": 0.012, "5": 0.001, "9": 0.004}
DEATH_RATE_BED_DAY = {"安宁疗护": 0.35, "精神": 0.001, "康复": 0.002}

EMPLOYEE, RESIDENT = "职工", "居民"
GENERAL, CHRONIC, SPECIAL, CLASS2 = "普通门诊", "慢病门诊", "特病门诊", "二类门特"
# Pooled-fund share in ‰ of an outpatient visit by insurance type, level and visit type (synthetic,
# shaped after SPEC §6.8: primary level ≥ 10 points above the others for residents, chronic ≥ 60%).
OUTPATIENT_RATIO = {
    (EMPLOYEE, GENERAL): {"基层": 850, "一级": 800, "二级": 750, "三级": 700},
    (RESIDENT, GENERAL): {"基层": 650, "一级": 550, "二级": 500, "三级": 450},
    (EMPLOYEE, CHRONIC): {"基层": 850, "一级": 820, "二级": 800, "三级": 780},
    (RESIDENT, CHRONIC): {"基层": 650, "一级": 620, "二级": 600, "三级": 600},
    (EMPLOYEE, SPECIAL): {"基层": 880, "一级": 860, "二级": 850, "三级": 850},
    (RESIDENT, SPECIAL): {"基层": 750, "一级": 720, "二级": 700, "三级": 700},
    (EMPLOYEE, CLASS2): {"基层": 920, "一级": 910, "二级": 900, "三级": 900},
    (RESIDENT, CLASS2): {"基层": 850, "一级": 830, "二级": 800, "三级": 800},
}
INPATIENT_RATIO = {
    EMPLOYEE: {"基层": 900, "一级": 880, "二级": 850, "三级": 800},
    RESIDENT: {"基层": 800, "一级": 750, "二级": 680, "三级": 600},
}
# Cost of a general visit in 分 (low, high) by level.
GENERAL_COST = {"基层": (2_500, 12_000), "一级": (4_000, 18_000), "二级": (8_000, 45_000), "三级": (12_000, 75_000)}
LEVEL_COST_FACTOR = {"基层": 0.7, "一级": 0.82, "二级": 1.0, "三级": 1.15}
# A few hospitals with a profile of their own, so the DRG 运行分析 quadrant (CMI against 费用消耗指数)
# shows a real spread: by the hospital's index, some charge more for the same group, some less, and
# the frugal ones send their severe cases (groups ending in 1) to the county's highest-ranked
# hospital, whose case mix (CMI) rises while theirs falls. Deterministic: no extra random draws, so
# every other figure of the demo stays where it was.
DRG_COST_PROFILE = {1: 1.3, 3: 0.8}  # hospital index % 5 → cost factor (else 1)
DRG_WEIGHTS = {
    "ES21": 4, "ES23": 10, "ES25": 10, "ET23": 6, "FR23": 5, "FM19": 3, "FT23": 5, "BR23": 5, "BR25": 4,
    "GZ15": 8, "GD19": 3, "HC39": 3, "CB39": 4, "OF29": 4, "OB29": 3, "IC29": 2, "IU23": 4, "IU25": 4,
    "IB39": 1, "KS13": 3, "KS15": 3, "RE19": 4, "EB19": 1, "GE19": 2, "LR19": 2, "XJ19": 1,
}
# Edge birthdays (relative to 1 January of the demo year): exactly 60, the day a person turns 61,
# exactly 61, exactly 65 (the 二类门特 risk weight), 64 and a 29 February birthday.
def edge_births(year):
    return [
        datetime.date(year - 60, 1, 1),   # 60 on 1 January → 60周岁及以下
        datetime.date(year - 61, 1, 2),   # still 60 on 1 January, 61 the next day
        datetime.date(year - 61, 1, 1),   # exactly 61 → 60周岁以上
        datetime.date(year - 61, 6, 15),  # 60 on 1 January
        datetime.date(year - 65, 1, 1),   # exactly 65
        datetime.date(year - 65, 1, 2),   # 64 on 1 January
        datetime.date(year - 72, 3, 8),
        datetime.date(1964, 2, 29),
        datetime.date(year - 1, 11, 20),  # an infant
    ]


# Share of the population by age in full years on 1 January: (lowest age, highest age, weight).
AGE_BANDS = [(0, 6, 6), (7, 17, 10), (18, 39, 28), (40, 59, 30), (60, 64, 8), (65, 79, 13), (80, 99, 5)]


def fen(value):
    """Integer 分 → the exact decimal text of the amount in 元."""
    return f"{value // 100}.{value % 100:02d}"


@dataclasses.dataclass
class Totals:
    """Integer-分 aggregates the standards, budgets and payments are calibrated on."""

    drg_fund_by_pool: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    drg_fund_by_institution: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    class2_fund: int = 0
    # (institution index, disease code) → designated heads treated there: the prepayments' Q_plan
    class2_heads_by_institution: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    fd_june_fee_by_institution: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    rows: collections.Counter = dataclasses.field(default_factory=collections.Counter)


# How many years before the demo year are generated as history: one is what every 测算 of the demo
# needs (capitation, 二类门特 and bed-day/per-disease from the previous year; DRG base points from the two
# previous years use what there is), and it keeps `--size city` within half again of its seeding time.
HISTORY_YEARS = 1


@dataclasses.dataclass
class _YearState:
    """What the generator reads for "the year being generated"; the history swaps in its own."""

    year: int
    rng: random.Random
    outcome_rng: random.Random
    totals: Totals
    jan1: datetime.date
    dec31: datetime.date
    days: list

    @classmethod
    def of(cls, year, rng, outcome_rng, totals):
        jan1, dec31 = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
        days = [jan1 + datetime.timedelta(days=n) for n in range((dec31 - jan1).days + 1)]
        return cls(year, rng, outcome_rng, totals, jan1, dec31, days)


class Population:
    def __init__(self, city, size, first_ids, seed):
        self.city = city
        self.size = size
        self.year = year = city.year
        self.rng = random.Random(seed)
        # 离院方式 draws from a stream of its own, so that every other demo figure stays what it was.
        self.outcome_rng = random.Random(f"{seed}-discharge-mode")
        self.ids = dict(first_ids)  # model → next free id
        self.totals = Totals()
        self.jan1 = datetime.date(year, 1, 1)
        self.dec31 = datetime.date(year, 12, 31)
        self.days = [self.jan1 + datetime.timedelta(days=n) for n in range((self.dec31 - self.jan1).days + 1)]
        self.edges = edge_births(year)
        # Next free ID sequence number per (county, sex, birth date): a flat array, not a dict, so that
        # memory stays flat at a million persons.
        self.first_birth = datetime.date(year - 110, 1, 1).toordinal()
        self.birth_span = self.dec31.toordinal() - self.first_birth + 1
        self.id_sequences = array.array("H", bytes(2 * 2 * len(city.counties) * self.birth_span))
        weights = [c.weight for c in city.counties]
        self.county_cumulative = [sum(weights[: n + 1]) / sum(weights) for n in range(len(weights))]
        self.age_cumulative = []
        total = sum(w for *_r, w in AGE_BANDS)
        running = 0
        for low, high, weight in AGE_BANDS:
            running += weight
            self.age_cumulative.append((running / total, low, high))
        insts = city.institutions
        self.inst = insts
        self.outside_hospitals = [n for n, i in enumerate(insts) if i.level == "三级"]
        self.inpatient_low = {  # per county: institutions that admit patients below 二级
            ci: c.primary + c.centers for ci, c in enumerate(city.counties)
        }
        self.drg = [g for g in cat.DRG_GROUPS]
        self.drg_cumulative = []
        running = 0
        for group in self.drg:
            running += DRG_WEIGHTS[group[0]]
            self.drg_cumulative.append(running)
        self.class2 = cat.SPECIAL_CLASS2
        self.d = city.disease_ids
        self.other_packages = {code: pk_fee for code, pk_fee in city.packages.items()}
        # The history years, oldest first; `history_totals[year]` is what their 测算 is calibrated on.
        self.history_totals = {}
        self.history = []
        for back in range(HISTORY_YEARS, 0, -1):
            past = year - back
            self.history_totals[past] = Totals()
            self.history.append(_YearState.of(
                past, random.Random(f"{seed}-history-{past}"), random.Random(f"{seed}-history-{past}-discharge-mode"),
                self.history_totals[past],
            ))

    @contextlib.contextmanager
    def _generating(self, state):
        """Generate rows of `state`'s year with its random streams and totals, then restore the demo year."""
        names = ("year", "rng", "outcome_rng", "totals", "jan1", "dec31", "days")
        saved = {name: getattr(self, name) for name in names}
        for name in names:
            setattr(self, name, getattr(state, name))
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    # --- helpers ---------------------------------------------------------------------------

    def _next(self, model):
        value = self.ids[model]
        self.ids[model] = value + 1
        return value

    def _pick(self, seq):
        return seq[int(self.rng.random() * len(seq))]

    def _day_between(self, first, last):
        span = (last - first).days
        return first + datetime.timedelta(days=int(self.rng.random() * (span + 1)))

    def _count(self, mean):
        """A count with the given mean and a long right tail (geometric-like)."""
        if mean <= 0:
            return 0
        return int(-math.log(1.0 - self.rng.random()) * mean + 0.5)

    # --- persons --------------------------------------------------------------------------

    def chunks(self):
        total, step = self.size.persons, self.size.chunk
        for start in range(0, total, step):
            yield start, min(total, start + step), self._chunk(start, min(total, start + step))

    def _chunk(self, start, stop):
        rows = {model: [] for model in WRITE_ORDER}
        for index in range(start, stop):
            self._person(index, rows)
        for model, model_rows in rows.items():
            self.totals.rows[model] += len(model_rows)  # the history's rows included
        return rows

    def _birth(self, index):
        edges = self.edges
        counties = len(self.city.counties)
        if index < counties * len(edges):
            return index % counties, edges[index // counties]
        r = self.rng.random()
        county = next(n for n, c in enumerate(self.county_cumulative) if r <= c)
        r = self.rng.random()
        low, high = next((lo, hi) for c, lo, hi in self.age_cumulative if r <= c)
        age = low + int(self.rng.random() * (high - low + 1))
        # Born within the year that makes the person exactly `age` on 1 January.
        last = datetime.date(self.year - age, 1, 1)
        birth = last - datetime.timedelta(days=int(self.rng.random() * 365))
        return county, birth

    def _person(self, index, rows):
        rnd = self.rng.random
        county_index, birth = self._birth(index)
        county = self.city.counties[county_index]
        age = self.year - birth.year - ((1, 1) < (birth.month, birth.day))
        sex = "M" if rnd() < 0.5 else "F"
        key = (county_index * 2 + (sex == "M")) * self.birth_span + birth.toordinal() - self.first_birth
        sequence = self.id_sequences[key]
        self.id_sequences[key] = sequence + 1
        if sequence >= 500:  # cannot happen at the planned sizes; keeps IDs unique if it ever did
            return self._person(index + len(self.edges) * len(self.city.counties), rows)
        id_number = build_resident_id(county.code, birth, sequence, sex)
        if age < 18:
            insurance = RESIDENT
        elif age < 60:
            insurance = EMPLOYEE if rnd() < 0.55 else RESIDENT
        else:
            insurance = EMPLOYEE if rnd() < 0.35 else RESIDENT
        status = "参保" if rnd() < 0.985 else ("暂停" if rnd() < 0.5 else "终止")
        name = self._pick(cat.SURNAMES) + self._pick(cat.GIVEN) + (self._pick(cat.GIVEN) if rnd() < 0.6 else "")
        person_id = self._next(InsuredPerson)
        rows[InsuredPerson].append((person_id, id_number, name, birth, sex, insurance, county.pk, status))

        home = self._pick(county.centers)
        contracts = self._contracts(person_id, age, county, home, index, rows)
        registrations = self._registrations(person_id, age, index, county, contracts, home, rows)
        signing = contracts[-1][0] if contracts else home
        designations = self._designations(person_id, county, registrations, contracts, rows)
        self._fd_services(person_id, contracts, rows)
        self._claims(person_id, age, insurance, county_index, signing, contracts, registrations, designations, rows)
        self._inpatient(person_id, age, insurance, county_index, registrations, designations, rows)
        for state in self.history:
            self._history_year(state, person_id, birth, insurance, county, county_index, home, contracts,
                               registrations, rows)

    def _history_year(self, state, person_id, birth, insurance, county, county_index, home, contracts,
                      registrations, rows):
        """The person's claims and cases of a past year (and that year's 二类门特 designations), by the
        demo year's rules: the contracts and registrations in force then; no one born after its 1 January."""
        if birth > datetime.date(state.year, 1, 1):
            return
        age = state.year - birth.year - ((1, 1) < (birth.month, birth.day))
        dec31 = datetime.date(state.year, 12, 31)
        then = [c for c in contracts if c[1] <= dec31]
        with self._generating(state):
            signing = then[-1][0] if then else home
            designations = self._designations(person_id, county, registrations, then, rows)
            self._claims(person_id, age, insurance, county_index, signing, then, registrations, designations, rows)
            self._inpatient(person_id, age, insurance, county_index, registrations, designations, rows)

    # --- contracts ------------------------------------------------------------------------

    def _contracts(self, person_id, age, county, home, index, rows):
        """(institution index, start, end, verified_on, package fee 分) of the person's contracts."""
        rnd = self.rng.random
        share = 0.75 if age >= 60 else (0.45 if age < 7 else 0.38)
        if rnd() >= share * self.size.contract_share:
            return []
        year = self.year
        past = self._day_between(datetime.date(year - 5, 1, 1), datetime.date(year - 1, 12, 31))
        in_year = self._day_between(datetime.date(year, 2, 1), datetime.date(year, 11, 30))
        where = home
        if county.stations and rnd() < 0.15:
            where = self._pick(county.stations)
        kind = rnd()
        periods = []
        if kind < 0.70:
            periods.append((where, past, None, True))
        elif kind < 0.78:  # signs during the demo year
            periods.append((where, in_year, None, True))
        elif kind < 0.86:  # never verified by the health commission
            periods.append((where, past if rnd() < 0.5 else in_year, None, False))
        elif kind < 0.92:  # ends mid-year
            periods.append((where, past, in_year, True))
        elif kind < 0.98:  # transfers to another institution mid-year, next day, no overlap
            other = self._pick([c for c in county.centers if c != where] or county.centers)
            periods.append((where, past, in_year, True))
            periods.append((other, in_year + datetime.timedelta(days=1), None, rnd() < 0.9))
        else:  # an older contract that ended before the year, then a new one
            first = self._day_between(datetime.date(year - 7, 1, 1), datetime.date(year - 6, 12, 31))
            end = self._day_between(datetime.date(year - 5, 1, 1), datetime.date(year - 3, 12, 31))
            periods.append((home, first, end, True))
            periods.append((where, end + datetime.timedelta(days=30), None, True))
        result = []
        for inst_index, start, end, verified in periods:
            inst = self.inst[inst_index]
            if not inst.teams:
                inst_index, inst = home, self.inst[home]
            package_id, fee = None, self.city.default_package[1]
            r = rnd()
            if r < 0.08:
                package_id = self.city.default_package[0]
            elif r < 0.20:
                code = "LN2021" if age >= 60 else ("ET2021" if age < 7 else "MB2021")
                package_id, fee = self.other_packages[code]
            verified_on = None
            if verified:
                verified_on = min(start + datetime.timedelta(days=int(rnd() * 21)), max(start, self.dec31))
            rows[Contract].append((
                self._next(Contract), person_id, self._pick(inst.teams), inst.pk, package_id, start, end, verified_on,
            ))
            result.append((inst_index, start, end, verified_on, fee))
            june30 = datetime.date(self.year, 6, 30)
            if verified_on and start <= june30 and (end is None or end >= june30):
                self.totals.fd_june_fee_by_institution[inst_index] += fee
        return result

    # --- registrations and 二类门特 designations -------------------------------------------

    def _registrations(self, person_id, age, index, county, contracts, home, rows):
        """[(disease code, category, filed_on, ended_on)] of the person."""
        rnd = self.rng.random
        wanted = []
        elderly = age >= 60
        for code, p_young, p_old, min_age in (
            ("I10", 0.06, 0.30, 35), ("E11", 0.03, 0.12, 30), ("I25", 0.01, 0.06, 45),
            ("J44", 0.005, 0.04, 45), ("I69", 0.002, 0.03, 50), ("E03", 0.01, 0.02, 20),
        ):
            if age >= min_age and rnd() < (p_old if elderly else p_young):
                wanted.append((code, "慢性病"))
        for code, _n, category in cat.SPECIAL + cat.SPECIAL_CLASS1:
            if age >= 15 and rnd() < 0.003:
                wanted.append((code, category))
        every = self.size.class2_every
        if index % every == every // 2 and age >= 12:
            code = self.class2[(index // every) % len(self.class2)][0]
            wanted.append((code, "二类门特"))
            if rnd() < 0.3:  # risk adjustment b: also holds a category-1 registration
                wanted.append((self._pick(("I50", "K74")), "一类门特"))
        result, seen = [], set()
        approving = contracts[-1][0] if contracts else (home if rnd() < 0.5 else self._pick(county.hospitals))
        for code, category in wanted:
            if code in seen:
                continue
            seen.add(code)
            if category == "二类门特" or rnd() < 0.8:
                filed = self._day_between(datetime.date(self.year - 8, 1, 1), datetime.date(self.year - 1, 12, 31))
            else:  # filed during the demo year: counts from its filing month
                filed = self._day_between(self.jan1, datetime.date(self.year, 11, 30))
            ended = None
            if category != "二类门特" and rnd() < 0.03:
                ended = self._day_between(max(filed, self.jan1), self.dec31)
            rows[DiseaseRegistration].append((
                self._next(DiseaseRegistration), person_id, self.d[code], filed, ended, self.inst[approving].pk,
            ))
            result.append((code, category, filed, ended))
        return result

    def _designations(self, person_id, county, registrations, contracts, rows):
        """{disease code: designated institution index} for 二类门特 persons (chosen for the year)."""
        result = {}
        for code, category, _filed, _ended in registrations:
            if category != "二类门特":
                continue
            if code == "N18" or not self.outside_hospitals or self.rng.random() < 0.6:
                where = county.hospitals[0]  # the county's main hospital runs dialysis and chemotherapy
            else:
                where = self._pick(self.outside_hospitals)
            signing = self.inst[contracts[-1][0]].pk if contracts else None
            rows[SpecialDesignation].append((
                self._next(SpecialDesignation), self.year, person_id, self.d[code], self.inst[where].pk, signing,
            ))
            result[code] = where
        return result

    def _fd_services(self, person_id, contracts, rows):
        rnd = self.rng.random
        for inst_index, start, end, verified_on, _fee in contracts:
            first, last = max(start, self.jan1), min(end or self.dec31, self.dec31)
            if verified_on is None or first > last or rnd() >= 0.75:
                continue
            count = 1 + int(rnd() * 4)
            items = self.rng.sample(cat.FD_SERVICE_ITEMS, count)
            for item in items:  # distinct items keep the business key unique
                rows[FamilyDoctorService].append((
                    self._next(FamilyDoctorService), person_id, self.inst[inst_index].pk,
                    self._day_between(first, last), item,
                ))

    # --- outpatient claims ----------------------------------------------------------------

    def _claim(self, rows, person_id, inst_index, day, insurance, visit_type, disease_code, cost, person_county,
               referral=False):
        inst = self.inst[inst_index]
        ratio = OUTPATIENT_RATIO[(insurance, visit_type)][inst.level]
        if inst.county != person_county:
            ratio -= 50
        if referral:
            ratio += 20
        fund = cost * ratio // 1000
        claim_id = self._next(OutpatientClaim)
        rows[OutpatientClaim].append((
            claim_id, inst.pk, f"MZ{self.year}{claim_id:010d}", person_id, day, insurance, visit_type,
            self.d[disease_code] if disease_code else None, fen(cost), fen(fund), fen(cost - fund), referral,
        ))
        return fund

    def _claims(self, person_id, age, insurance, county_index, signing, contracts, registrations, designations, rows):
        rnd = self.rng.random
        county = self.city.counties[county_index]
        days = self.days
        n_days = len(days)
        alliance = self.inst[signing].alliance
        members = self.city.alliances[alliance].members if alliance >= 0 else county.centers
        contracted = bool(contracts)
        mean = (6.0 if age < 7 else 3.5 if age < 18 else 4.5 if age < 60 else 9.0) * self.size.visit_factor
        for _ in range(self._count(mean)):
            u = rnd()
            if u < 0.5:
                where = signing
            elif u < 0.72:
                where = self._pick(members)
            elif u < 0.92:
                where = self._pick(county.hospitals if rnd() < 0.7 else (county.primary or county.hospitals))
            else:  # outside the person's alliance and county: deducted from its package (SPEC §6.1)
                where = self._pick(self.outside_hospitals or county.hospitals)
            level = self.inst[where].level
            low, high = GENERAL_COST[level]
            cost = low + int(rnd() * (high - low))
            if rnd() < 0.04:
                cost *= 3
            referral = contracted and level in ("二级", "三级") and rnd() < 0.12
            self._claim(
                rows, person_id, where, days[int(rnd() * n_days)], insurance, GENERAL, None, cost, county_index,
                referral,
            )

        for code, category, filed, ended in registrations:
            first = max(filed, self.jan1)
            last = min(ended or self.dec31, self.dec31)
            if first > last:
                continue
            span = (last - first).days
            if category == "慢性病":
                visits, visit_type, low, high = 3 + int(rnd() * 10), CHRONIC, 6_000, 32_000
                places = (signing, signing, self._pick(county.hospitals))
            elif category in ("特殊病", "一类门特"):
                visits, visit_type, low, high = 4 + int(rnd() * 9), SPECIAL, 20_000, 180_000
                places = (self._pick(county.hospitals),)
            else:
                continue
            visits = max(1, int(visits * self.size.visit_factor))
            for _ in range(visits):
                day = first + datetime.timedelta(days=int(rnd() * (span + 1)))
                self._claim(rows, person_id, self._pick(places), day, insurance, visit_type, code,
                            low + int(rnd() * (high - low)), county_index)

        for code, where in designations.items():
            if rnd() < 0.05:
                continue  # designated but never treated: not an actual head (SPEC §6.2)
            profile = next(p for c, _n, _k, p, _s in self.class2 if c == code)
            v_low, v_high, c_low, c_high = profile
            visits = max(1, int((v_low + int(rnd() * (v_high - v_low + 1))) * self.size.class2_visit_factor))
            for _ in range(visits):
                place = where if rnd() < 0.97 else self._pick(county.hospitals)
                fund = self._claim(rows, person_id, place, days[int(rnd() * n_days)], insurance, CLASS2, code,
                                   c_low + int(rnd() * (c_high - c_low)), county_index)
                self.totals.class2_fund += fund
            self.totals.class2_heads_by_institution[(where, code)] += 1

    # --- inpatient cases ------------------------------------------------------------------

    def _inpatient(self, person_id, age, insurance, county_index, registrations, designations, rows):
        rnd = self.rng.random
        chance = (0.08 if age < 18 else 0.10 if age < 60 else 0.32) + (0.4 if designations else 0)
        chance *= self.size.inpatient_factor
        cases = 0
        while rnd() < chance and cases < 3:
            cases += 1
            u = rnd()
            if u < 0.06 + (0.06 if age >= 70 else 0):
                self._bed_day_case(person_id, age, insurance, county_index, registrations, rows)
            elif u < 0.20:
                self._per_disease_case(person_id, insurance, county_index, rows)
            else:
                self._drg_case(person_id, insurance, county_index, rows)
            chance *= 0.35

    def _case(self, rows, person_id, inst_index, admission, stay, diagnosis, operation, drg_code, cost, insurance,
              person_county, incomplete=False, bed_day_category=""):
        rnd = self.rng.random
        inst = self.inst[inst_index]
        ratio = INPATIENT_RATIO[insurance][inst.level] - (50 if inst.county != person_county else 0)
        fund = cost * ratio // 1000
        case_id = self._next(InpatientCase)
        transferred, new_technology = rnd() < 0.02, rnd() < 0.005
        rows[InpatientCase].append((
            case_id, inst.pk, f"ZY{self.year}{case_id:09d}", person_id, admission,
            admission + datetime.timedelta(days=stay), diagnosis, operation, drg_code, fen(cost), fen(fund),
            fen(cost - fund), incomplete, transferred, new_technology, bed_day_category,
            self._discharge_mode(drg_code, bed_day_category, transferred),
        ))
        return fund

    def _discharge_mode(self, drg_code, bed_day_category, transferred):
        """离院方式 (SPEC §4): 2 for a transfer; deaths concentrated in the severe groups (an ADRG's
        subgroup 1 = 伴严重并发症) and in hospice care; otherwise mostly 医嘱离院."""
        if transferred:
            return "2"
        if bed_day_category:
            death_rate = DEATH_RATE_BED_DAY.get(bed_day_category, 0.001)
        else:
            death_rate = DEATH_RATE_BY_SEVERITY.get(drg_code[-1:], 0.002) if drg_code else 0.002
        r = self.outcome_rng.random()
        if r < death_rate:
            return "5"
        if r < death_rate + 0.03:
            return "4"  # 非医嘱离院
        if r < death_rate + 0.05:
            return "3"  # 医嘱转社区/乡镇卫生院
        return "1"

    def _admission(self, stay):
        """An admission date whose discharge falls in the demo year (some admitted the December before)."""
        latest = len(self.days) - 1 - stay
        earliest = -min(12, stay)
        offset = earliest + int(self.rng.random() * (latest - earliest + 1))
        return self.jan1 + datetime.timedelta(days=offset)

    def _hospital_for(self, county_index, min_rank):
        county = self.city.counties[county_index]
        rnd = self.rng.random
        if rnd() < 0.1 and self.outside_hospitals:
            return self._pick(self.outside_hospitals)
        if min_rank <= 1 and rnd() < 0.3:
            low = [i for i in self.inpatient_low[county_index] if self.inst[i].rank >= min_rank]
            if low:
                return self._pick(low)
        fit = [i for i in county.hospitals if self.inst[i].rank >= min_rank and self.inst[i].tag != "psy"]
        return self._pick(fit or self.outside_hospitals or county.hospitals)

    def _drg_case(self, person_id, insurance, county_index, rows):
        rnd = self.rng.random
        pick = rnd() * self.drg_cumulative[-1]
        group = next(g for g, c in zip(self.drg, self.drg_cumulative) if pick < c)
        code, _name, average, mean_stay, diagnosis, operation, min_level, *_flags = group
        where = self._profiled(self._hospital_for(county_index, LEVEL_RANK[min_level]), code, county_index)
        level = self.inst[where].level
        incomplete = rnd() < 0.04
        if incomplete:
            stay = int(rnd() * 3)
            cost = int(average * 100 * (0.12 + rnd() * 0.3))
        else:
            stay = max(1, int(mean_stay * (0.5 + rnd())))
            cost = int(average * 100 * LEVEL_COST_FACTOR[level] * DRG_COST_PROFILE.get(where % 5, 1)
                       * (0.55 + rnd() * 0.9))
            if rnd() < 0.02:
                cost = int(cost * 2.5)
        admission = self._admission(stay)
        fund = self._case(rows, person_id, where, admission, stay, diagnosis, operation, code, cost, insurance,
                          county_index, incomplete=incomplete)
        self._count_drg(where, fund)
        discharge = admission + datetime.timedelta(days=stay)
        if not incomplete and rnd() < 0.05:
            # Readmission to the same group within 0–10 days, at the same or another hospital (SPEC §6.5).
            again = discharge + datetime.timedelta(days=int(rnd() * 11))
            stay2 = max(1, int(mean_stay * (0.4 + rnd() * 0.6)))
            if again + datetime.timedelta(days=stay2) <= self.dec31:
                where2 = where if rnd() < 0.7 else self._hospital_for(county_index, LEVEL_RANK[min_level])
                cost2 = int(average * 100 * LEVEL_COST_FACTOR[self.inst[where2].level] * (0.4 + rnd() * 0.6))
                fund2 = self._case(rows, person_id, where2, again, stay2, diagnosis, operation, code, cost2,
                                   insurance, county_index)
                self._count_drg(where2, fund2)

    def _profiled(self, where, drg_code, county_index):
        """A frugal hospital's severe case goes to its county's highest-ranked hospital (DRG_COST_PROFILE)."""
        hospitals = self.city.counties[county_index].hospitals
        if DRG_COST_PROFILE.get(where % 5) == 0.8 and drg_code.endswith("1") and where in hospitals:
            general = [i for i in hospitals if self.inst[i].tag != "psy"]
            return max(general, key=lambda i: (self.inst[i].rank, -i), default=where)
        return where

    def _count_drg(self, inst_index, fund):
        inst = self.inst[inst_index]
        county = self.city.counties[inst.county]
        self.totals.drg_fund_by_pool[f"{county.code}-{inst.band}"] += fund
        self.totals.drg_fund_by_institution[inst_index] += fund

    def _per_disease_case(self, person_id, insurance, county_index, rows):
        rnd = self.rng.random
        code, _name, operation, standards = self._pick(cat.PER_DISEASE)
        county = self.city.counties[county_index]
        fit = [
            i for i in county.hospitals + county.primary if self.inst[i].level in standards and not self.inst[i].tag
        ]
        if not fit:
            return self._drg_case(person_id, insurance, county_index, rows)
        where = self._pick(fit)
        standard = standards[self.inst[where].level]
        stay = 2 + int(rnd() * 6)
        cost = int(standard * (0.75 + rnd() * 0.5))
        self._case(rows, person_id, where, self._admission(stay), stay, code, operation, cat.PER_DISEASE_DRG[code],
                   cost, insurance, county_index)

    def _bed_day_case(self, person_id, age, insurance, county_index, registrations, rows):
        rnd = self.rng.random
        county = self.city.counties[county_index]
        has_psy = any(code == "F20" for code, *_r in registrations)
        r = rnd()
        if has_psy or r < 0.3:
            category = "精神"
            local = [i for i in self.city.psychiatric if self.inst[i].county == county_index]
            places = local or self.city.psychiatric or county.hospitals
        elif r < 0.55 and age >= 60:
            category = "安宁疗护"
            places = county.centers[:3] + county.hospitals[-1:]
        else:
            category = "康复"
            local = [i for i in self.city.rehabilitation if self.inst[i].county == county_index]
            places = local + county.hospitals[1:2] + county.centers[:1]
        where = self._pick(places)
        diagnosis = next(c for c, _n, _k, bc in cat.BED_DAY_DISEASES if bc == category)
        stay = 12 + int(rnd() * 80)
        quota = cat.BED_DAY_QUOTAS[category][self.inst[where].level]
        cost = int(stay * quota * (0.85 + rnd() * 0.45))
        self._case(rows, person_id, where, self._admission(stay), stay, diagnosis, "", "", cost, insurance,
                   county_index, bed_day_category=category)
