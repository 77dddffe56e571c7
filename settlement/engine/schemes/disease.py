"""Per-disease payment (SPEC §6.7; SX §2(1)).

Unit = institution. A case is in this scheme when its principal diagnosis (+ main operation) has a
standard for the institution's level and the discharge year (precedence and matching: see
inpatient_common). The standard covers the whole stay and the patient's share is collected by the
hospital, so the fund owes standard − 个人负担 per case:

    E = Σ (standard − 个人负担) over the non-exited cases + Σ 统筹支付 of the exited cases
    A = Σ 统筹支付 of all its per-disease cases

Exited cases (退出按病种付费, approved per case) are paid by item: their 统筹支付 is in E and in A, so
they add nothing to S. The standard is the whole entitlement (no budget is shared), so Q = E,
S = E − A is entirely the institution's (unit part = S, fund part = 0), paid = the `payments` rows.

Bed-fee excess and CQ/CG implants are paid by item outside the standard (SX); they are not separate
lines in an inpatient case yet, so they are not in these figures.

Which cases have exited is a plain input (`exited_case_ids`); the exit-request workflow will supply it,
and will use `check_exit_cap` (SX: 各病种退出率需控制在15%以内) before approving a request.
"""
import dataclasses
import datetime
from decimal import Decimal
from typing import Collection

from settlement.models import Scheme

from ..base import RunContext, SchemeRule, UnitOutcome, q2, register
from .inpatient_common import DISEASE, REGIONS_SQL, InpatientRecovery, classified_cases_sql, fetch_dicts, region_filter_sql


@dataclasses.dataclass(frozen=True)
class DiseaseParams:
    exit_rate_cap: Decimal = dataclasses.field(  # 各病种退出率需控制在15%以内 [SX]
        default=Decimal("0.15"), metadata={"label": "病种退出率上限", "min": Decimal("0"), "max": Decimal("1")},
    )


@dataclasses.dataclass(frozen=True)
class DiseaseLine:
    disease_code: str
    cases: int
    exited_cases: int
    standard_payment: Decimal  # Σ (standard − 个人负担) over the non-exited cases
    exited_fund_paid: Decimal  # Σ 统筹支付 of the exited cases (paid by item)
    fund_paid: Decimal  # Σ 统筹支付 of all cases
    personal_over_standard: int  # non-exited cases whose 个人负担 exceeds the standard


@dataclasses.dataclass(frozen=True)
class DiseaseInputs:
    unit_code: str
    unit_name: str
    lines: tuple[DiseaseLine, ...]


_DISEASE_SQL = f"""
    WITH k AS ({classified_cases_sql(DISEASE)}),
    flagged AS (SELECT k.*, k.id = ANY(%(exited_ids)s::bigint[]) AS exited FROM k)
    SELECT i.code AS unit_code, i.name AS unit_name, d.code AS disease_code,
           COUNT(*) AS cases,
           COUNT(*) FILTER (WHERE f.exited) AS exited_cases,
           COALESCE(SUM(f.disease_standard * %(standards_factor)s - f.personal_paid) FILTER (WHERE NOT f.exited), 0)
             AS standard_payment,
           COALESCE(SUM(f.fund_paid) FILTER (WHERE f.exited), 0) AS exited_fund_paid,
           SUM(f.fund_paid) AS fund_paid,
           COUNT(*) FILTER (WHERE NOT f.exited AND f.personal_paid > f.disease_standard * %(standards_factor)s)
             AS personal_over_standard
      FROM flagged f
      JOIN alliances_institution i ON i.id = f.institution_id
      JOIN ({REGIONS_SQL}) r ON r.id = i.county_id
      JOIN contracts_disease d ON d.id = f.disease_id
     WHERE {region_filter_sql('r.code', 'r.parent_code')}
     GROUP BY i.code, i.name, d.code
     ORDER BY i.code, d.code
"""


def gather_disease(ctx: RunContext, params: DiseaseParams, exited_case_ids: Collection[int] = (),
                   standards_factor=Decimal("1")) -> dict[str, DiseaseInputs]:
    """`standards_factor` is 1 except in a simulation (SPEC §11): Σ (f·standard − 个人负担) per case."""
    rows = fetch_dicts(_DISEASE_SQL, {
        "date_from": ctx.first_day, "date_to": ctx.last_day, "region_code": ctx.region_code,
        "exited_ids": sorted(exited_case_ids), "standards_factor": Decimal(standards_factor),
    })
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["unit_code"], []).append(row)
    line_fields = {field.name for field in dataclasses.fields(DiseaseLine)}
    return {
        code: DiseaseInputs(
            unit_code=code,
            unit_name=rows_[0]["unit_name"],
            lines=tuple(DiseaseLine(**{k: v for k, v in row.items() if k in line_fields}) for row in rows_),
        )
        for code, rows_ in grouped.items()
    }


def compute_disease(inputs: DiseaseInputs, params: DiseaseParams, paid: Decimal) -> UnitOutcome:
    entitled = q2(sum((line.standard_payment + line.exited_fund_paid for line in inputs.lines), Decimal("0")))
    actual = q2(sum((line.fund_paid for line in inputs.lines), Decimal("0")))
    surplus = entitled - actual
    warnings = []
    over = sum(line.personal_over_standard for line in inputs.lines)
    if over:
        warnings.append(f"{inputs.unit_name}有{over}例按病种付费病例个人负担超过支付标准，基金支付为负数，请核实")
    for line in inputs.lines:
        if line.cases and Decimal(line.exited_cases) / line.cases > params.exit_rate_cap:
            warnings.append(
                f"{inputs.unit_name}病种{line.disease_code}退出率{_percent(Decimal(line.exited_cases) / line.cases)}"
                f"超过{_percent(params.exit_rate_cap)}",
            )
    return UnitOutcome.settle(
        unit_code=inputs.unit_code,
        unit_name=inputs.unit_name,
        quota=entitled,  # the standards are the entitlement (see module docstring)
        actual=actual,
        unit_part=surplus,
        entitled=entitled,
        paid=paid,
        details={
            "cases": sum(line.cases for line in inputs.lines),
            "exited_cases": sum(line.exited_cases for line in inputs.lines),
            "by_disease": {
                line.disease_code: {
                    "cases": line.cases,
                    "exited_cases": line.exited_cases,
                    "standard_payment": line.standard_payment,
                    "exited_fund_paid": line.exited_fund_paid,
                    "fund_paid": line.fund_paid,
                }
                for line in inputs.lines
            },
        },
        warnings=tuple(warnings),
    )


def _percent(ratio: Decimal) -> str:
    return f"{q2(ratio * 100)}%"


# --- Exit-rate cap ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExitCapCheck:
    cases: int
    exits_after: int  # approved exits including the one being decided
    rate_after: Decimal
    cap: Decimal
    within_cap: bool  # False: approving needs an explicit override with a reason


def check_exit_cap(cases: int, approved_exits: int, cap: Decimal = Decimal("0.15")) -> ExitCapCheck:
    """Pure: would approving one more exit keep the disease's exit rate at the institution in the year
    within the cap? Exactly at the cap is within (SX: 控制在15%以内). `cases` counts every per-disease
    case of that disease, institution and year, the one asking to exit included."""
    if cases <= approved_exits:
        raise ValueError("病例数应大于已批准退出数")
    exits_after = approved_exits + 1
    rate = Decimal(exits_after) / Decimal(cases)
    return ExitCapCheck(cases, exits_after, rate, cap, rate <= cap)


def require_within_cap_or_override(check: ExitCapCheck, override_reason: str = "") -> None:
    """Raises unless the approval is within the cap or comes with a reason for overriding it."""
    if not check.within_cap and not override_reason.strip():
        raise ValueError(
            f"批准后退出率为{_percent(check.rate_after)}，超过{_percent(check.cap)}上限，须填写特殊情况说明方可批准",
        )


def disease_exit_counts(year: int, institution_id: int, disease_code: str, exited_case_ids: Collection[int] = ()):
    """(cases, exited cases) of one disease at one institution in a year: the inputs of check_exit_cap."""
    rows = fetch_dicts(
        f"""WITH k AS ({classified_cases_sql(DISEASE)})
            SELECT COUNT(*) AS cases, COUNT(*) FILTER (WHERE k.id = ANY(%(exited_ids)s::bigint[])) AS exited
              FROM k JOIN contracts_disease d ON d.id = k.disease_id
             WHERE k.institution_id = %(institution_id)s AND d.code = %(disease_code)s""",
        {
            "date_from": datetime.date(year, 1, 1), "date_to": datetime.date(year, 12, 31),
            "institution_id": institution_id, "disease_code": disease_code, "exited_ids": sorted(exited_case_ids),
        },
    )
    return rows[0]["cases"], rows[0]["exited"]


@register
class DiseaseRule(InpatientRecovery, SchemeRule):
    scheme = Scheme.DISEASE.value
    params_class = DiseaseParams
    detail_labels = {"cases": "病例数", "exited_cases": "退出按病种付费病例数", "by_disease": "按病种"}
    detail_totals = {"by_disease": ("fund_paid", "@actual", "")}
    figure_parts = {"entitled": (("by_disease.standard_payment", "by_disease.exited_fund_paid"), "")}
    figure_notes = {"quota": "按病种付费的定额即应得金额"}

    def exited_case_ids(self, ctx: RunContext) -> set[int]:
        """Case ids of the approved 退出按病种付费 requests of the year's cases."""
        from ..case_review_services import exited_case_ids

        return exited_case_ids(ctx.year)

    def approval_blockers(self, ctx):
        from ..case_requests import DiseaseExitRequest
        from ..case_review_services import pending_blockers

        return pending_blockers(DiseaseExitRequest, ctx.scheme, ctx.year, ctx.region_code, "退出按病种付费申请")

    gather_parameters = frozenset()
    # The fund pays standard − 个人负担 per case: the sum of those cannot be rescaled afterwards.
    simulation_factors = {"standards": "gather"}

    def simulation_gather(self, ctx, params, factors):
        return gather_disease(ctx, params, self.exited_case_ids(ctx), factors.standards)

    def gather(self, ctx, params):
        return gather_disease(ctx, params, self.exited_case_ids(ctx))

    def compute(self, inputs, params, paid):
        return compute_disease(inputs, params, paid)
