"""门诊按人头付费 (SPEC §6.1): alliances paid per contracted head, sharing surplus and overspend.

gather: set-based queries over contracts × memberships (as month ranges), registrations and
claims; compute: pure Decimal arithmetic on the gathered counts.
"""
import concurrent.futures
import dataclasses
import datetime
import uuid
from decimal import Decimal

from django.db import connection, connections, transaction
from django.db.models.expressions import RawSQL

from contracts.models import Disease
from settlement.models import AgeBand, ApprovalStatus, Assessment, CapitationStandard, OutpatientClaim, VisitType

from .. import sql as S
from ..base import RunContext, SchemeRule, UnitOutcome, q2, register

HUNDRED = Decimal("100")
TWELVE = Decimal("12")
ZERO = Decimal("0.00")


class SettlementInputError(Exception):
    """Input data that makes the whole run impossible (e.g. a class of heads without a standard)."""


@dataclasses.dataclass(frozen=True)
class CapitationParams:
    retention: Decimal = dataclasses.field(
        default=Decimal("0.85"), metadata={"label": "结余留用比例", "min": Decimal("0"), "max": Decimal("1")},
    )
    overspend_share: Decimal = dataclasses.field(
        default=Decimal("0.85"), metadata={"label": "超支分担比例", "min": Decimal("0"), "max": Decimal("1")},
    )
    max_bonus_up: Decimal = dataclasses.field(
        default=Decimal("5"), metadata={"label": "考核留用比例最高上浮（百分点）", "min": Decimal("0"), "max": Decimal("100")},
    )
    max_bonus_down: Decimal = dataclasses.field(
        default=Decimal("5"), metadata={"label": "考核超支分担最多下调（百分点）", "min": Decimal("0"), "max": Decimal("100")},
    )
    # HZ "根据考核结果…最高上升5个百分点": off, the points entered on the assessment row apply; on, they
    # follow the score linearly from the pass score (0 points) to 100 (the full cap).
    bonus_from_score: bool = dataclasses.field(
        default=False, metadata={"label": "按考核得分折算上浮/下调百分点"},
    )
    bonus_pass_score: Decimal = dataclasses.field(
        default=Decimal("60"), metadata={"label": "折算起点得分（得分不高于此不上浮）", "min": Decimal("0"), "max": Decimal("99")},
    )
    disease_add_mode: str = dataclasses.field(
        default="add_all", metadata={"label": "慢特病标准叠加方式", "choices": ("add_all", "highest_only"),
                                     "choice_labels": {"add_all": "各病种标准逐项叠加", "highest_only": "只计最高的一项标准"}},
    )
    visit_types: tuple[str, ...] = dataclasses.field(
        default=(VisitType.GENERAL.value, VisitType.CHRONIC.value),
        metadata={"label": "计入实际支出的门诊类型", "choices": tuple(VisitType.values)},
    )
    standard_valid_years: int = dataclasses.field(
        default=2, metadata={"label": "测算标准有效年数", "min": 1, "max": 10},
    )

    def __post_init__(self):
        if not self.visit_types:
            raise ValueError("至少选择一种计入实际支出的门诊类型")


@dataclasses.dataclass(frozen=True)
class ClassFigures:
    """Heads of one class (insurance type × age band) with its 普通门诊 standard."""

    insurance_type: str
    age_band: str
    heads: int
    person_months: int
    standard: Decimal | None


@dataclasses.dataclass(frozen=True)
class DiseaseFigures:
    """Registered person-months of one disease in one class; `highest_person_months` counts the months
    in which this disease carries the person's highest standard (used by `highest_only`)."""

    insurance_type: str
    age_band: str
    disease_code: str
    disease_name: str
    heads: int
    person_months: int
    highest_person_months: int
    standard: Decimal | None


@dataclasses.dataclass(frozen=True)
class CapitationInputs:
    unit_code: str
    unit_name: str
    classes: tuple[ClassFigures, ...]
    diseases: tuple[DiseaseFigures, ...]
    actual_inside: Decimal
    actual_outside: Decimal
    claims_inside: int = 0
    claims_outside: int = 0
    retention_bonus: Decimal = Decimal("0")  # assessment points (留用上浮)
    overspend_reduction: Decimal = Decimal("0")  # assessment points (超支分担下调)
    score: Decimal | None = None  # the assessment score, when there is an assessment row

    @property
    def heads(self):
        return sum(c.heads for c in self.classes)


# --- compute (pure) ---------------------------------------------------------------------


def assessment_points(params: CapitationParams, inputs: CapitationInputs):
    """(up, down) points of the assessment: as entered, or from the score when the policy says so."""
    if params.bonus_from_score and inputs.score is not None:
        fraction = (Decimal(inputs.score) - params.bonus_pass_score) / (HUNDRED - params.bonus_pass_score)
        fraction = min(Decimal("1"), max(Decimal("0"), fraction))
        return fraction * params.max_bonus_up, fraction * params.max_bonus_down
    return inputs.retention_bonus, inputs.overspend_reduction


def shares(params: CapitationParams, retention_bonus, overspend_reduction):
    """Retention ratio and overspend share after the assessment, each bonus capped by the policy."""
    up = min(Decimal(retention_bonus), params.max_bonus_up) / HUNDRED
    down = min(Decimal(overspend_reduction), params.max_bonus_down) / HUNDRED
    return min(Decimal("1"), params.retention + up), max(Decimal("0"), params.overspend_share - down)


def split_surplus(surplus: Decimal, retention: Decimal, share: Decimal):
    """(unit part, fund part) of S, the unit's part rounded once from the rounded S (SPEC §3)."""
    if surplus >= 0:
        unit_part = q2(retention * surplus)
    else:
        unit_part = -q2(share * -surplus)
    return unit_part, surplus - unit_part


def compute_capitation(inputs: CapitationInputs, params: CapitationParams, paid: Decimal) -> UnitOutcome:
    warnings = []
    numerator = Decimal("0")  # Σ person-months × standard (元·月/年), divided by 12 once
    class_rows = []
    for c in inputs.classes:
        standard = c.standard if c.standard is not None else Decimal("0")
        numerator += c.person_months * standard
        class_rows.append({
            "insurance_type": c.insurance_type, "age_band": c.age_band, "heads": c.heads,
            "person_months": c.person_months, "standard": str(c.standard) if c.standard is not None else None,
            "quota": str(q2(c.person_months * standard / TWELVE)),
        })
    highest = params.disease_add_mode == "highest_only"
    disease_rows = []
    for d in inputs.diseases:
        months = d.highest_person_months if highest else d.person_months
        if d.standard is None:
            if d.person_months:
                warnings.append(
                    f"病种{d.disease_name}（{d.disease_code}）在{d.insurance_type}{d.age_band}没有已审批的人头标准，"
                    f"{d.person_months}人·月未计入额度"
                )
            contribution = Decimal("0")
        else:
            contribution = months * d.standard
        numerator += contribution
        disease_rows.append({
            "insurance_type": d.insurance_type, "age_band": d.age_band, "disease_code": d.disease_code,
            "disease_name": d.disease_name, "heads": d.heads, "person_months": d.person_months,
            "counted_person_months": months if d.standard is not None else 0,
            "standard": str(d.standard) if d.standard is not None else None,
            "quota": str(q2(contribution / TWELVE)),
        })

    quota = q2(numerator / TWELVE)
    actual = q2(inputs.actual_inside + inputs.actual_outside)
    surplus = quota - actual
    bonus_up, bonus_down = assessment_points(params, inputs)
    retention, share = shares(params, bonus_up, bonus_down)
    unit_part, fund_part = split_surplus(surplus, retention, share)
    entitled = actual + unit_part
    # The fund paid every claim's 统筹支付 as it occurred: A counts as already paid (SPEC §6).
    paid_total = q2(paid) + actual
    details = {
        "heads": inputs.heads,
        "person_months": sum(c.person_months for c in inputs.classes),
        "classes": class_rows,
        "diseases": disease_rows,
        "disease_add_mode": params.disease_add_mode,
        "quota_base": str(q2(sum((c.person_months * (c.standard or 0) for c in inputs.classes), Decimal("0")) / TWELVE)),
        "quota_diseases": str(q2(sum((Decimal(r["quota"]) for r in disease_rows), Decimal("0")))),
        "actual_inside": str(q2(inputs.actual_inside)),
        "actual_outside": str(q2(inputs.actual_outside)),
        "claims_inside": inputs.claims_inside,
        "claims_outside": inputs.claims_outside,
        "claims": inputs.claims_inside + inputs.claims_outside,
        "visit_types": list(params.visit_types),
        "retention_bonus_points": str(bonus_up),
        "overspend_reduction_points": str(bonus_down),
        "assessment_score": str(inputs.score) if inputs.score is not None else None,
        "retention_used": str(retention),
        "overspend_share_used": str(share),
        "payments": str(q2(paid)),
        "paid_as_claims": str(actual),
    }
    return UnitOutcome.settle(
        inputs.unit_code, inputs.unit_name, quota=quota, actual=actual, unit_part=unit_part,
        entitled=entitled, paid=paid_total, details=details, warnings=warnings,
    )


# --- gather (set-based SQL) -------------------------------------------------------------


def band_cutoff(year):
    """Born after this day → at most 60 full years on 1 January of `year` (contracts.validators.age_on)."""
    return datetime.date(year - 61, 1, 1)


def _year_params(year, named):
    named.update(
        jan1=datetime.date(year, 1, 1), jan31=datetime.date(year, 1, 31), dec31=datetime.date(year, 12, 31),
        band_cut=band_cutoff(year), young=AgeBand.UP_TO_60.value, old=AgeBand.OVER_60.value,
    )
    return named


def _segments_select(year, named, region_code=None, unit_code=None):
    """(person, alliance, lo, hi, insurance type, age band, first_day, end_day): the months a verified
    contract with a member of the alliance counts, as month numbers lo…hi and as the dates
    [first_day, end_day) that claims are compared with."""
    _year_params(year, named)
    lo = S.greatest("1", S.first_month("c.start", year), S.first_month("ms.joined_on", year))
    hi = S.least("12", S.last_month('c."end"', year), S.last_month("ms.left_on", year))
    where = ""
    if region_code:
        named["region_code"] = region_code
        where += " AND al.county_id = (SELECT id FROM alliances_region WHERE code = %(region_code)s)"
    if unit_code:
        named["unit_code"] = unit_code
        where += " AND al.code = %(unit_code)s"
    return f"""
        SELECT s.person_id, s.alliance_id, s.lo, s.hi, p.insurance_type,
               CASE WHEN p.birth_date > %(band_cut)s THEN %(young)s ELSE %(old)s END AS age_band,
               {S.month_start("s.lo", year)} AS first_day, {S.month_start("s.hi + 1", year)} AS end_day
        FROM (
            SELECT c.person_id AS person_id, ms.alliance_id AS alliance_id, {lo} AS lo, {hi} AS hi
            FROM contracts_contract c
            JOIN alliances_membership ms ON ms.institution_id = c.institution_id
            JOIN alliances_alliance al ON al.id = ms.alliance_id
            WHERE c.verified_on IS NOT NULL
              AND c.start <= %(dec31)s AND (c."end" IS NULL OR c."end" >= %(jan31)s)
              AND ms.joined_on <= %(dec31)s AND (ms.left_on IS NULL OR ms.left_on >= %(jan31)s){where}
        ) s
        JOIN contracts_insuredperson p ON p.id = s.person_id
        WHERE s.lo <= s.hi"""


def _members_select(year):
    """(institution, alliance, first_day, end_day): the settlement year's months in which a membership is
    in force on the month's last day, as the dates [first day of the first month, first day after the last).
    Memberships that ended before the last day of the previous year count for no month of it (and
    their month arithmetic would fall before January)."""
    return f"""
        SELECT m.institution_id, m.alliance_id,
               {S.month_start(S.greatest("1", S.first_month("m.joined_on", year)), year)} AS first_day,
               {S.month_start(S.least("13", S.last_month("m.left_on", year) + " + 1"), year)} AS end_day
        FROM alliances_membership m
        WHERE m.left_on IS NULL OR m.left_on >= '{int(year) - 1:04d}-12-31'"""


def _segments_sql(year, named, region_code=None, unit_code=None):
    """The CTE `seg` (see `_segments_select`)."""
    return f"seg AS ({_segments_select(year, named, region_code, unit_code)})"


class Segments:
    """`seg` for the several queries of one gather, computed once.

    It is written to an unlogged table (analysed, so the planner knows its size; parallel workers
    can read it, unlike a temporary table), and the queries run with a larger work_mem and without
    JIT (`tune`), so the join with a year of claims stays in memory and the month ranges are not
    recomputed for every claim.

    By default the table lives inside the caller's transaction and a rollback takes it away.
    `shared` (outside any transaction) commits it, so that a second connection can read it too;
    it is named after the session that made it and dropped at the end, even on failure, and one
    left behind by a killed worker is dropped by the next shared gather.
    """

    def __init__(self, year, region_code=None, unit_code=None, shared=False):
        self.year, self.region_code, self.unit_code, self.shared = year, region_code, unit_code, shared
        self.table = None

    def __enter__(self):
        if self.shared:
            _drop_abandoned_segments()
        connection.ensure_connection()
        self.table = f"capitation_seg_{connection.connection.info.backend_pid}_{uuid.uuid4().hex[:8]}"
        named = {}
        seg_query, seg_values = S.positional(
            f"CREATE UNLOGGED TABLE {self.table} AS "
            f"{_segments_select(self.year, named, self.region_code, self.unit_code)}",
            named,
        )
        with transaction.atomic(), connection.cursor() as cursor:
            self.tune()
            cursor.execute(seg_query, seg_values)
            # The planner needs the row count and person_id's spread, not fine histograms: a small
            # sample analyses half a million segments in a few milliseconds instead of a quarter second.
            cursor.execute("SET LOCAL default_statistics_target = 10")
            cursor.execute(f"ANALYZE {self.table}")
        return self

    def __exit__(self, *exc):
        # Unshared, an exception rolls the caller's transaction back, and the table with it.
        if self.table and (self.shared or not exc[0]):
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
        return False

    def tune(self):
        """The gather's work_mem and no JIT, for the rest of the current transaction."""
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{_work_mem()}'")
            cursor.execute("SET LOCAL jit = off")

    def cte(self, named):
        """The `seg` CTE for one more query, registering the year's parameters. It is NOT
        MATERIALIZED: a query may name it twice, and a materialized CTE would keep the query from
        running its parts in parallel workers."""
        _year_params(self.year, named)
        return f"seg AS NOT MATERIALIZED (SELECT * FROM {self.table})"


def _drop_abandoned_segments():
    """Drop shared segment tables whose session has ended: a worker killed in the middle of a gather."""
    tables = S.fetch(r"""
        SELECT relname FROM pg_class
        WHERE relkind = 'r' AND relpersistence = 'u' AND relname LIKE 'capitation\_seg\_%%'
          AND pg_table_is_visible(oid)
    """, {})
    if not tables:
        return
    alive = {pid for (pid,) in S.fetch("SELECT pid FROM pg_stat_activity", {})}
    with connection.cursor() as cursor:
        for (name,) in tables:
            parts = name.split("_")
            if len(parts) == 4 and parts[2].isdigit() and int(parts[2]) not in alive:
                cursor.execute(f'DROP TABLE IF EXISTS "{name}"')


def _work_mem():
    from django.conf import settings

    value = str(getattr(settings, "SETTLEMENT_WORK_MEM", "256MB"))
    if not value[:-2].isdigit() or value[-2:] not in ("kB", "MB", "GB"):
        raise ValueError("SETTLEMENT_WORK_MEM 应写成如 256MB")
    return value


def _claim_month(year):
    return "CAST(EXTRACT(MONTH FROM cl.visit_date) AS integer)"


def _claims_sql(year, visit_types, named):
    """FROM/WHERE of the heads' claims of `visit_types` in counted months.

    Month ranges are compared as dates [first_day, end_day) stored with the segments, so nothing is
    computed per claim row.
    """
    types = S.in_list("vt", visit_types, named)
    return f"""{_claims_from()} AND cl.visit_type IN ({types})
    """


def _claims_from():
    """FROM/WHERE of the heads' claims of any visit type in counted months (see `_claims_sql`)."""
    return """
        FROM settlement_outpatientclaim cl
        JOIN seg s ON s.person_id = cl.person_id AND cl.visit_date >= s.first_day AND cl.visit_date < s.end_day
        WHERE cl.visit_date BETWEEN %(jan1)s AND %(dec31)s"""


def _as_date(value):
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


def _inside_sql(year, named):
    """Whether claim `cl` was made at an institution that was a member of segment `s`'s alliance in the
    month of the visit.

    The year's memberships (a few hundred rows) are written into the expression as integer keys
    institution × span + alliance. Pairs in force all year form one `IN` list, which PostgreSQL
    probes as a hash set; the few pairs in force for part of the year form a second list, and only
    a claim whose pair is in it has its date compared with that pair's months. Looking the pair up
    this way instead of joining a members table for every claim takes a tenth off the claims
    statement. The expression is boolean on purpose: the planner counts two groups for a boolean,
    so the statement's GROUP BY runs in the parallel workers; an integer expression of the claim's
    date was guessed at a million groups and every joined claim was sent to the leader.
    """
    jan1, next_jan1 = datetime.date(year, 1, 1), datetime.date(year + 1, 1, 1)
    windows = [
        (int(institution), int(alliance), _as_date(first), _as_date(end))
        for institution, alliance, first, end in S.fetch(_members_select(year), {})
    ]
    windows = [w for w in windows if w[2] < w[3]]
    if not windows:
        return "false"
    span = max(alliance for _, alliance, _, _ in windows) + 1
    key = f"(cl.institution_id * {span} + s.alliance_id)"
    whole = sorted({i * span + a for i, a, first, end in windows if first <= jan1 and end >= next_jan1})
    part = {}
    for i, a, first, end in sorted(windows):
        if not (first <= jan1 and end >= next_jan1):
            part.setdefault(i * span + a, []).append((first, end))
    whens = []
    if whole:
        whens.append(f"WHEN {key} IN ({', '.join(map(str, whole))}) THEN true")
    if part:
        arms = []
        for pair, spans in part.items():
            tests = []
            for first, end in spans:
                f, e = f"mf{len(named)}", f"me{len(named)}"
                named[f], named[e] = first, end
                tests.append(f"(cl.visit_date >= %({f})s AND cl.visit_date < %({e})s)")
            arms.append(f"WHEN {pair} THEN ({' OR '.join(tests)})")
        whens.append(f"WHEN {key} IN ({', '.join(map(str, part))}) THEN CASE {key} {' '.join(arms)} ELSE false END")
    return f"CASE {' '.join(whens)} ELSE false END"


def resolve_standards(year):
    """(insurance type, age band, disease id or None) → approved standard in force for `year`.

    A standard of year Y0 is valid for its `valid_years` years (Y0 … Y0 + valid_years − 1); among
    those valid, the latest year wins.
    """
    chosen = {}
    rows = (
        CapitationStandard.objects.filter(status=ApprovalStatus.APPROVED, year__lte=year)
        .order_by("-year")
        .values_list("year", "valid_years", "insurance_type", "age_band", "disease_id", "amount")
    )
    for std_year, valid_years, insurance_type, age_band, disease_id, amount in rows:
        if std_year + max(valid_years, 1) - 1 < year:
            continue
        chosen.setdefault((insurance_type, age_band, disease_id), amount)
    return chosen


def gather_capitation(ctx: RunContext, params: CapitationParams, unit_code=None):
    year = ctx.year
    standards = resolve_standards(year)
    scope = (year, ctx.region_code, unit_code)
    if not connection.in_atomic_block:
        # The heads on a second connection while this one sums the claims: the two cores share the
        # work instead of one waiting while the other sorts heads.
        with Segments(*scope, shared=True) as segments, concurrent.futures.ThreadPoolExecutor(1) as pool:
            heads = pool.submit(_on_own_connection, _tuned, segments, _head_rows, year, params, standards)
            claim_rows = _tuned(segments, _claim_rows, year, params)
            class_rows, disease_rows, highest = heads.result()
    else:
        # Inside a caller's transaction (a page, the tests) a second connection would not see the data.
        with transaction.atomic(), Segments(*scope) as segments:
            class_rows, disease_rows, highest = _head_rows(year, params, standards, segments)
            claim_rows = _claim_rows(year, params, segments)
    return _assemble(ctx, standards, class_rows, disease_rows, highest, claim_rows)


def _tuned(segments, query, *args):
    """`query(*args, segments)` in a transaction of its own, with the gather's settings."""
    with transaction.atomic():
        segments.tune()
        return query(*args, segments)


def _on_own_connection(work, *args):
    try:
        return work(*args)
    finally:
        connections.close_all()  # this thread's connection, not the caller's


def _head_rows(year, params, standards, segments):
    # Heads and person-months per class, and per class × registered disease, in one statement: on
    # PostgreSQL its two halves run side by side in parallel workers.
    named = {}
    seg = segments.cte(named)
    r_lo = S.greatest("s.lo", S.first_month("r.filed_on", year))
    r_hi = S.least("s.hi", S.last_month("r.ended_on", year))
    class_rows, disease_rows = [], []
    # Heads are counted as the groups of a per-person GROUP BY rather than COUNT(DISTINCT): that is two
    # hash aggregates the parallel workers share, where COUNT(DISTINCT) sorted every segment of the city
    # in one process (2.6 s of the city's 3.7 s). A person's insurance type and age band are the
    # person's own, so each person falls in one class either way.
    for row in S.fetch(f"""
        WITH {seg}
        SELECT alliance_id, insurance_type, age_band, NULL AS disease_id, SUM(months), COUNT(*) FROM (
            SELECT alliance_id, insurance_type, age_band, person_id, SUM(hi - lo + 1) AS months
            FROM seg GROUP BY alliance_id, insurance_type, age_band, person_id
        ) per_person GROUP BY alliance_id, insurance_type, age_band
        UNION ALL
        SELECT alliance_id, insurance_type, age_band, disease_id, SUM(months), COUNT(*) FROM (
            SELECT s.alliance_id, s.insurance_type, s.age_band, r.disease_id, s.person_id,
                   SUM({r_hi} - {r_lo} + 1) AS months
            FROM seg s JOIN contracts_diseaseregistration r ON r.person_id = s.person_id
            WHERE r.filed_on <= %(dec31)s AND (r.ended_on IS NULL OR r.ended_on >= %(jan31)s) AND {r_hi} >= {r_lo}
            GROUP BY s.alliance_id, s.insurance_type, s.age_band, r.disease_id, s.person_id
        ) per_person GROUP BY alliance_id, insurance_type, age_band, disease_id
    """, named):
        if row[3] is None:
            class_rows.append(row[:3] + row[4:])
        else:
            disease_rows.append(row)

    highest = {}
    disease_standards = [(k, v) for k, v in standards.items() if k[2] is not None]
    if params.disease_add_mode == "highest_only" and disease_standards:
        named = {}
        seg = segments.cte(named)
        values = []
        for index, ((insurance_type, age_band, disease_id), amount) in enumerate(disease_standards):
            named.update({f"si{index}": insurance_type, f"sb{index}": age_band, f"sd{index}": disease_id,
                          f"sc{index}": int(amount * 100)})
            values.append(f"(%(si{index})s, %(sb{index})s, %(sd{index})s, %(sc{index})s)")
        months = " UNION ALL ".join(f"SELECT {m} AS m" for m in range(1, 13))
        rows = S.fetch(f"""
            WITH {seg},
            months AS ({months}),
            std(insurance_type, age_band, disease_id, cents) AS (VALUES {", ".join(values)})
            SELECT alliance_id, insurance_type, age_band, disease_id, COUNT(*) FROM (
                SELECT s.alliance_id, s.insurance_type, s.age_band, r.disease_id,
                       ROW_NUMBER() OVER (PARTITION BY s.alliance_id, s.person_id, mo.m
                                          ORDER BY st.cents DESC, r.disease_id) AS rn
                FROM seg s
                JOIN months mo ON mo.m BETWEEN s.lo AND s.hi
                JOIN contracts_diseaseregistration r ON r.person_id = s.person_id
                     AND mo.m BETWEEN {S.first_month("r.filed_on", year)} AND {S.last_month("r.ended_on", year)}
                JOIN std st ON st.insurance_type = s.insurance_type AND st.age_band = s.age_band
                     AND st.disease_id = r.disease_id
            ) x WHERE rn = 1
            GROUP BY alliance_id, insurance_type, age_band, disease_id
        """, named)
        highest = {(a, i, b, d): n for a, i, b, d, n in rows}
    return class_rows, disease_rows, highest


def _claim_rows(year, params, segments):
    # A inside and outside the alliance. Claims of visit types that do not count are grouped apart
    # (inside NULL) and dropped, which is cheaper than testing the type before the join.
    named = {}
    seg = segments.cte(named)
    types = S.in_list("vt", params.visit_types, named)
    inside = _inside_sql(year, named)
    return [row for row in S.fetch(f"""
        WITH {seg}
        SELECT alliance_id, inside, {S.sum_money("fund_paid")}, COUNT(*) FROM (
            SELECT s.alliance_id, CASE WHEN cl.visit_type IN ({types}) THEN {inside} END AS inside, cl.fund_paid
            {_claims_from()}
        ) x GROUP BY alliance_id, inside
    """, named) if row[1] is not None]


def _assemble(ctx, standards, class_rows, disease_rows, highest, claim_rows):
    from alliances.models import Alliance

    alliance_ids = {row[0] for row in class_rows}
    alliances = {a.pk: a for a in Alliance.objects.filter(pk__in=alliance_ids)}
    disease_ids = {row[3] for row in disease_rows}
    diseases = {d.pk: d for d in Disease.objects.filter(pk__in=disease_ids)}
    assessments = {
        a.unit_code: a
        for a in Assessment.objects.filter(year=ctx.year, unit_code__in=[a.code for a in alliances.values()])
    }

    classes, missing = {}, set()
    for alliance_id, insurance_type, age_band, person_months, heads in class_rows:
        standard = standards.get((insurance_type, age_band, None))
        if standard is None and person_months:
            missing.add(f"{insurance_type}{age_band}")
        classes.setdefault(alliance_id, []).append(
            ClassFigures(insurance_type, age_band, int(heads), int(person_months), standard)
        )
    if missing:
        raise SettlementInputError(
            f"{ctx.year}年度缺少已审批的普通门诊人头标准：{'、'.join(sorted(missing))}，请先审批人头标准"
        )
    by_disease = {}
    for alliance_id, insurance_type, age_band, disease_id, person_months, heads in disease_rows:
        disease = diseases[disease_id]
        by_disease.setdefault(alliance_id, []).append(DiseaseFigures(
            insurance_type, age_band, disease.code, disease.name, int(heads), int(person_months),
            int(highest.get((alliance_id, insurance_type, age_band, disease_id), 0)),
            standards.get((insurance_type, age_band, disease_id)),
        ))
    actual = {}
    for alliance_id, inside, total, count in claim_rows:
        actual[(alliance_id, int(inside))] = (S.money_value(total), int(count))

    inputs = {}
    for alliance_id, alliance in sorted(alliances.items(), key=lambda item: item[1].code):
        assessment = assessments.get(alliance.code)
        a_in, n_in = actual.get((alliance_id, 1), (ZERO, 0))
        a_out, n_out = actual.get((alliance_id, 0), (ZERO, 0))
        inputs[alliance.code] = CapitationInputs(
            unit_code=alliance.code, unit_name=alliance.name,
            classes=tuple(sorted(classes.get(alliance_id, []), key=lambda c: (c.insurance_type, c.age_band))),
            diseases=tuple(sorted(by_disease.get(alliance_id, []),
                                  key=lambda d: (d.insurance_type, d.age_band, d.disease_code))),
            actual_inside=a_in, actual_outside=a_out, claims_inside=n_in, claims_outside=n_out,
            retention_bonus=assessment.retention_bonus if assessment else Decimal("0"),
            overspend_reduction=assessment.overspend_reduction if assessment else Decimal("0"),
            score=assessment.score if assessment else None,
        )
    return inputs


def claims_queryset(ctx: RunContext, params: CapitationParams, unit_code: str):
    """The claims behind one alliance's A, as an OutpatientClaim queryset (for the admin drill-down)."""
    named = {}
    seg = _segments_sql(ctx.year, named, ctx.region_code, unit_code)
    claim_from = _claims_sql(ctx.year, params.visit_types, named)
    query, values = S.positional(f"WITH {seg} SELECT cl.id {claim_from}", named)
    return OutpatientClaim.objects.filter(pk__in=RawSQL(query, values))


# --- 测算: proposing standards from history --------------------------------------------


def history_per_class(base_year: int, disease_visit_types=(VisitType.CHRONIC.value, VisitType.SPECIAL.value)):
    """For one past year: person-months and 统筹支付 per class (普通门诊) and per class × disease
    (of the `disease_visit_types` claims: by default 慢病 and 特病门诊).

    Returns ({(ins, band): (person_months, fund)}, {(ins, band, disease_id): (person_months, fund)}).
    """
    with transaction.atomic(), Segments(base_year) as segments:
        return _history_rows(base_year, segments, list(disease_visit_types))


def _history_rows(base_year, segments, disease_visit_types):
    named = {}
    seg = segments.cte(named)
    base_pm = {(i, b): int(pm) for i, b, pm in S.fetch(f"""
        WITH {seg} SELECT insurance_type, age_band, SUM(hi - lo + 1) FROM seg GROUP BY insurance_type, age_band
    """, named)}

    named = {}
    seg = segments.cte(named)
    claim_from = _claims_sql(base_year, [VisitType.GENERAL.value], named)
    base_fund = {(i, b): S.money_value(total) for i, b, total in S.fetch(f"""
        WITH {seg}
        SELECT insurance_type, age_band, {S.sum_money("fund_paid")} FROM (
            SELECT s.insurance_type, s.age_band, cl.fund_paid {claim_from}
        ) x GROUP BY insurance_type, age_band
    """, named)}

    named = {}
    seg = segments.cte(named)
    r_lo = S.greatest("s.lo", S.first_month("r.filed_on", base_year))
    r_hi = S.least("s.hi", S.last_month("r.ended_on", base_year))
    disease_pm = {(i, b, d): int(pm) for i, b, d, pm in S.fetch(f"""
        WITH {seg}
        SELECT s.insurance_type, s.age_band, r.disease_id, SUM({r_hi} - {r_lo} + 1)
        FROM seg s JOIN contracts_diseaseregistration r ON r.person_id = s.person_id
        WHERE {r_hi} >= {r_lo}
        GROUP BY s.insurance_type, s.age_band, r.disease_id
    """, named)}

    named = {}
    seg = segments.cte(named)
    claim_from = _claims_sql(base_year, disease_visit_types, named)
    disease_fund = {(i, b, d): S.money_value(total) for i, b, d, total in S.fetch(f"""
        WITH {seg}
        SELECT insurance_type, age_band, disease_id, {S.sum_money("fund_paid")} FROM (
            SELECT s.insurance_type, s.age_band, cl.disease_id, cl.fund_paid {claim_from}
              AND EXISTS (
                SELECT 1 FROM contracts_diseaseregistration r
                WHERE r.person_id = cl.person_id AND r.disease_id = cl.disease_id
                  AND {_claim_month(base_year)} BETWEEN {S.first_month("r.filed_on", base_year)} AND {S.last_month("r.ended_on", base_year)}
              )
        ) x GROUP BY insurance_type, age_band, disease_id
    """, named)}

    base = {k: (pm, base_fund.get(k, ZERO)) for k, pm in base_pm.items()}
    disease = {k: (pm, disease_fund.get(k, ZERO)) for k, pm in disease_pm.items()}
    return base, disease


@register
class CapitationRule(SchemeRule):
    scheme = "capitation"
    params_class = CapitationParams
    actual_counts_as_paid = True
    detail_labels = {
        "classes": "普通门诊人头（按险种、年龄段）",
        "diseases": "慢特病人头（按病种）",
        "heads": "签约人头数（人）",
        "person_months": "计费人·月数",
        "disease_add_mode": "慢特病标准叠加方式",
        "quota_base": "普通门诊额度（元）",
        "quota_diseases": "慢特病额度（元）",
        "actual_inside": "医共体内就医统筹支付（元）",
        "actual_outside": "医共体外就医统筹支付（元）",
        "claims_inside": "医共体内结算笔数",
        "claims_outside": "医共体外结算笔数",
        "claims": "计入结算笔数",
        "visit_types": "计入的门诊类型",
        "retention_bonus_points": "考核留用上浮（百分点）",
        "overspend_reduction_points": "考核超支分担下调（百分点）",
        "assessment_score": "考核得分",
        "retention_used": "实际结余留用比例",
        "overspend_share_used": "实际超支分担比例",
        "payments": "拨付记录合计（元）",
        "paid_as_claims": "已按就诊支付的统筹基金（元）",
    }

    # Which claims count, how registrations add up and which standards are valid shape the gather.
    gather_parameters = frozenset({"visit_types", "disease_add_mode", "standard_valid_years"})
    simulation_factors = {"standards": "inputs"}

    def scale_inputs(self, inputs, factors):
        # Every standard of the table × the factor; a missing standard stays missing.
        def scaled(standard):
            return None if standard is None else standard * factors.standards

        return dataclasses.replace(
            inputs,
            classes=tuple(dataclasses.replace(c, standard=scaled(c.standard)) for c in inputs.classes),
            diseases=tuple(dataclasses.replace(d, standard=scaled(d.standard)) for d in inputs.diseases),
        )

    detail_totals = {
        "classes": ("quota", "quota_base", "各行分别四舍五入到分；普通门诊额度按各类人·月×标准合计后一次舍入"),
        "diseases": ("quota", "quota_diseases", "各行分别四舍五入到分，慢特病额度为各行之和"),
    }
    figure_parts = {
        "quota": (("quota_base", "quota_diseases"), "预算额度按全部人·月×标准合计后÷12一次四舍五入到分"),
        "actual": (("actual_inside", "actual_outside"), ""),
        "paid": (("payments", "paid_as_claims"), ""),
    }
    figure_notes = {
        "unit_part": "结余时 = 结余 × 实际结余留用比例，超支时 = −超支 × 实际超支分担比例，四舍五入到分",
        "entitled": "实际支出（A） + 单位分担留用",
    }

    def gather(self, ctx, params):
        return gather_capitation(ctx, params)

    def compute(self, inputs, params, paid):
        return compute_capitation(inputs, params, paid)

    def prepayment(self, ctx, params, month):
        # Capitation pays each claim's 统筹支付 as it occurs; nothing is prepaid.
        return {}

    def claims_for_unit(self, ctx, params, unit_code):
        return claims_queryset(ctx, params, unit_code)
