"""A deterministic synthetic Huzhou-like city for demos and load tests (`manage.py seed_demo`).

`small` (a few thousand persons) lands through bulk_create in one transaction, and is what
`make run` seeds on every start; `city` (≈ a third of SPEC §8) streams through PostgreSQL COPY in
chunks of persons so memory stays bounded. Running either again when the demo data is present
changes nothing and only prints the logins.
"""
import dataclasses
import time

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from alliances.models import Alliance, Institution, UserScope
from alliances.scope import Role
from alliances.services import create_user
from settlement.analysis import aggregates as drg_aggregates
from settlement.engine.models import PaymentPolicy
from settlement.kpi_aggregates.services import rebuild_year
from settlement.models import InpatientCase, OutpatientClaim

from . import catalogue as cat
from .audit import write_audit_patterns
from .benefits import write_benefits
from .parameters import write_parameters
from .policies import write_policies
from .population import COLUMNS, WRITE_ORDER, Population
from .reference import build_reference, next_ids
from .writers import BulkWriter, CopyWriter, analyze, dangling_references, reset_sequences, vacuum


class DemoError(Exception):
    """A reason, in Chinese, why the demo data cannot be seeded."""


@dataclasses.dataclass(frozen=True)
class Size:
    name: str
    persons: int
    chunk: int
    alliances_per_county: tuple
    hospitals_per_county: int
    private_per_county: int
    towns_per_county: int | None  # None = every town
    stations_per_town: int
    teams_per_center: int
    teams_per_station: int
    contract_share: float
    visit_factor: float
    inpatient_factor: float
    class2_every: int
    class2_visit_factor: float
    copy: bool


SIZES = {
    "small": Size(
        name="small", persons=2_500, chunk=2_500, alliances_per_county=(2, 1, 1, 2, 1), hospitals_per_county=5,
        private_per_county=2, towns_per_county=4, stations_per_town=1, teams_per_center=2, teams_per_station=0,
        contract_share=1.0, visit_factor=1.0, inpatient_factor=1.2, class2_every=97, class2_visit_factor=0.25,
        copy=False,
    ),
    # A tenth of the city, with its structure (≈ 1 M claims a year, as many again in the history year): for
    # benchmarks that must fit a shared machine.
    "medium": Size(
        name="medium", persons=100_000, chunk=20_000, alliances_per_county=(4, 4, 4, 4, 4), hospitals_per_county=8,
        private_per_county=12, towns_per_county=None, stations_per_town=13, teams_per_center=3, teams_per_station=1,
        contract_share=1.0, visit_factor=1.38, inpatient_factor=1.2, class2_every=330, class2_visit_factor=1.0,
        copy=True,
    ),
    "city": Size(
        name="city", persons=1_000_000, chunk=20_000, alliances_per_county=(4, 4, 4, 4, 4), hospitals_per_county=8,
        private_per_county=12, towns_per_county=None, stations_per_town=13, teams_per_center=3, teams_per_station=1,
        contract_share=1.0, visit_factor=1.38, inpatient_factor=1.2, class2_every=330, class2_visit_factor=1.0,
        copy=True,
    ),
}

# username, role, scope (None = city-wide; "lead" = the lead hospital of the first alliance), password
DEMO_LOGINS = [
    ("demo", Role.CITY, None, "Demo@2026"),
    ("demo_county", Role.COUNTY, "330502", "County@2026"),
    ("demo_health", Role.HEALTH, "330502", "Health@2026"),
    ("demo_hospital", Role.HOSPITAL, "lead", "Hospital@2026"),
    ("demo_audit", Role.AUDITOR, None, "Audit@2026"),
]
# The first institution the demo creates; together with the `demo` login it marks the data as present.
MARKER_INSTITUTION = f"H{cat.COUNTIES[0][0]}00001"
MARKER_ALLIANCE = f"YGT{cat.COUNTIES[0][0]}01"


@dataclasses.dataclass
class SeedResult:
    already_present: bool
    year: int | None = None
    counts: dict = dataclasses.field(default_factory=dict)  # verbose name → rows written
    seconds: float = 0.0
    logins: list = dataclasses.field(default_factory=list)  # (username, password, role label, scope)


def default_year():
    """The demo year: the previous calendar year, complete by the time anyone looks at it."""
    return timezone.localdate().year - 1


def demo_present():
    return (
        get_user_model().objects.filter(username=DEMO_LOGINS[0][0]).exists()
        and Institution.objects.filter(code=MARKER_INSTITUTION).exists()
    )


def seed_demo(size="small", year=None, log=print):
    if size not in SIZES:
        raise DemoError(f"规模“{size}”无效，可选：{', '.join(SIZES)}")
    profile = SIZES[size]
    if demo_present():
        log("演示数据已存在，未做任何修改。")
        return SeedResult(already_present=True, logins=demo_logins())
    clash = (
        Institution.objects.filter(code=MARKER_INSTITUTION).exists()
        or Alliance.objects.filter(code=MARKER_ALLIANCE).exists()
    )
    if clash:
        raise DemoError(
            f"数据库中已有机构 {MARKER_INSTITUTION} 或医共体 {MARKER_ALLIANCE}，但没有演示登录账号："
            "可能是上次生成中断或已导入真实数据。请使用空数据库重新生成。"
        )
    year = year or default_year()
    started = time.monotonic()
    log(f"生成演示数据：规模 {size}，年度 {year}，参保人 {profile.persons:,} 人")
    if profile.copy:
        counts = _seed(profile, year, log, CopyWriter(), started)
    else:
        with transaction.atomic():
            counts = _seed(profile, year, log, BulkWriter(), started)
    if not connection.in_atomic_block:  # (the tests seed inside a transaction they roll back)
        vacuumed = time.monotonic()
        vacuum()
        log(f"  数据库已整理（VACUUM ANALYZE，{time.monotonic() - vacuumed:.0f} 秒）")
    seconds = time.monotonic() - started
    return SeedResult(already_present=False, year=year, counts=counts, seconds=seconds, logins=demo_logins())


def _seed(profile, year, log, writer, started):
    with transaction.atomic():
        city = build_reference(profile, year, log)
    counts = {}
    first_ids = {model: next_ids(model) for model in WRITE_ORDER}
    population = Population(city, profile, first_ids, seed=f"seed-demo-{profile.name}-{year}")
    triggers_off = profile.copy and _disable_triggers()
    try:
        for start, stop, rows in population.chunks():
            with transaction.atomic():
                for model in WRITE_ORDER:
                    writer.write(model, COLUMNS[model], rows[model])
            if profile.copy or stop == profile.persons:
                claims = population.totals.rows[OutpatientClaim]
                log(f"  参保人 {stop:,}/{profile.persons:,}，门诊结算 {claims:,} 条（{time.monotonic() - started:.0f} 秒）")
    finally:
        if triggers_off:
            _enable_triggers()
    reset_sequences(list(WRITE_ORDER))
    if triggers_off:
        problems = [p for model in WRITE_ORDER for p in dangling_references(model, first_ids[model])]
        if problems:
            raise DemoError("生成的数据存在无效外键：" + "；".join(problems))
        log(f"  外键检查通过（{time.monotonic() - started:.0f} 秒）")
    if profile.copy:
        analyze(list(WRITE_ORDER))  # fresh planner statistics before anyone settles on millions of rows
    with transaction.atomic():
        approver = _create_logins(city)
        parameter_counts = write_parameters(city, population.totals, population.history_totals, log, approver)
        parameter_counts[PaymentPolicy] = write_policies(city.year, approver, log)
        benefit_counts, added_claims, (audit_claims, audit_cases) = write_benefits(
            city, approver, log, plant=lambda outside: write_audit_patterns(city.year, outside))
        log(f"  审核演示：市外医院植入门诊结算 {audit_claims} 条、住院病例 {audit_cases} 例（重复结算、分解住院、"
            "低标准入院、高倍率、高套分组、超频、同日多机构）")
        parameter_counts.update(benefit_counts)
    # The dashboard reads the KPI pre-aggregates: the demo year and the one before (for growth).
    for kpi_year in (city.year - 1, city.year):
        seconds = rebuild_year(kpi_year)
        log(f"  {kpi_year}年指标汇总已生成（{seconds} 秒）")
    # The DRG 运行分析 page reads its pre-aggregates, which a DRG run rebuilds when it finishes: the demo
    # settles nothing, so it builds them itself, or the page would compute the year's cases live.
    for drg_year in (city.year - 1, city.year):
        seconds = drg_aggregates.rebuild_year(drg_year)
        log(f"  {drg_year}年DRG运行分析汇总已生成（{seconds} 秒）")
    reference = {
        "统筹区/县区": len(city.counties) + 1,
        "定点医疗机构": len(city.institutions),
        "医共体": len(city.alliances),
        "家庭医生团队": sum(len(i.teams) for i in city.institutions),
    }
    counts.update(reference)
    for model in WRITE_ORDER:
        counts[str(model._meta.verbose_name)] = population.totals.rows[model]
    # the benefit demo's and the audit demo's out-of-city claims and cases
    counts[str(OutpatientClaim._meta.verbose_name)] += added_claims + audit_claims
    counts[str(InpatientCase._meta.verbose_name)] += audit_cases
    for model, n in parameter_counts.items():
        counts[str(model._meta.verbose_name)] = n
    return counts


def _disable_triggers():
    """Skip per-row foreign-key triggers during COPY, as pg_restore --disable-triggers does.

    Needs superuser; without it the COPY simply runs with the checks. Referential integrity is then
    verified set-based once all rows are in (`dangling_references`).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
        return True
    except DatabaseError:
        return False


def _enable_triggers():
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")


def _create_logins(city):
    lead = city.institutions[city.alliances[0].lead].code
    users = {}
    for username, role, scope, password in DEMO_LOGINS:
        users[username] = create_user(username, role, lead if scope == "lead" else scope, password)
    return users[DEMO_LOGINS[0][0]]


def demo_logins():
    """(username, password, role label, scope) of the demo logins that exist."""
    scopes = {
        s.user.username: s
        for s in UserScope.objects.select_related("user", "region", "institution").filter(
            user__username__in=[login[0] for login in DEMO_LOGINS]
        )
    }
    result = []
    for username, role, _scope, password in DEMO_LOGINS:
        scope = scopes.get(username)
        if scope is None:
            continue
        where = scope.institution or scope.region or "全市"
        result.append((username, password, Role.LABELS.get(scope.role, scope.role), str(where)))
    return result
