"""测算 of DRG base points put to use (SPEC §6.5): preview the proposals next to the year's catalogue,
and adopt the chosen ones into it.

The figures are `schemes.drg.base_point_proposals`: complete DRG stays discharged in the two years before
the target year, trimmed per group by IQR, base points = group average cost / average of all trimmed
cases × 100, with the coefficient of variation per group. This module compares them with the `DrgGroup`
rows of the year and writes the ones the city bureau adopts.

`adopt` recomputes the proposals instead of taking figures from the caller, so what lands is always what
the database says; `expected` (code → base points the user was shown) lets a page refuse when cases were
imported between preview and adoption, rather than write figures nobody looked at.
"""
import dataclasses
from decimal import Decimal
from typing import Iterable, Mapping

from django.db import IntegrityError, transaction
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from alliances.scope import Role
from settlement.models import DrgGroup, Scheme

from .base import q2
from .models import PaymentPolicy, RunStatus, SettlementRun
from .schemes.drg import BasePointProposal, DrgParams, base_point_proposals
from .services import (
    SettlementError, _require, check_year, policy_parameters, resolve_policy,
)

CHANGE_REASON = "基准点数测算采纳"


@dataclasses.dataclass(frozen=True)
class CalibrationRow:
    """One group's proposal beside the catalogue row of the target year (None: the group is new)."""

    proposal: BasePointProposal
    name: str  # the year's row, else the previous year's, else the code
    name_source: str  # "current" | "previous" | "code"
    current_base_points: Decimal | None
    current_average_cost: Decimal | None

    @property
    def code(self) -> str:
        return self.proposal.drg_code

    @property
    def cv_exceeded(self) -> bool:
        return self.proposal.cv_exceeded

    @property
    def change(self) -> Decimal | None:
        """Proposed − current base points (None for a group not yet in the year's catalogue)."""
        if self.current_base_points is None:
            return None
        return self.proposal.base_points - self.current_base_points

    @property
    def change_percent(self) -> Decimal | None:
        if not self.current_base_points:
            return None
        return q2(self.change / self.current_base_points * 100)


def history_years(year: int) -> tuple[int, int]:
    return year - 2, year - 1


def calibration_params(year) -> tuple[DrgParams, PaymentPolicy | None]:
    """The IQR factor and CV threshold of the year's approved city-wide DRG policy, else the defaults.

    Base points are one catalogue for the whole city, so a county policy does not apply. A policy whose
    parameters are invalid stops the 测算 (its message says why) rather than silently using defaults."""
    year = check_year(year)
    try:
        policy = resolve_policy(Scheme.DRG, year)
    except SettlementError:  # none for the year, or not approved yet
        return DrgParams(), None
    return policy_parameters(policy), policy


def settled_runs(year) -> list[SettlementRun]:
    """The year's DRG runs already approved or paid: adopting new base points leaves their stored figures
    as they are, but a re-computation of the year (a new version) would use the new catalogue."""
    return list(
        SettlementRun.objects.filter(scheme=Scheme.DRG, year=year, status__in=[RunStatus.APPROVED, RunStatus.PAID])
        .order_by("pk")
    )


def preview(year, params: DrgParams | None = None) -> list[CalibrationRow]:
    """The year's proposals (by DRG code) with the current catalogue figures; refuses an empty history."""
    year = check_year(year)
    if params is None:
        params, _ = calibration_params(year)
    proposals = base_point_proposals(year, params)
    if not proposals:
        first, last = history_years(year)
        raise SettlementError(
            f"{first}至{last}年没有可用于测算的DRG病例（完整住院、已入组，不含床日付费和按病种付费病例），"
            f"无法测算{year}年度基准点数；请先导入{first}至{last}年的住院病例",
        )
    codes = [p.drg_code for p in proposals]
    current = {
        g.code: g for g in DrgGroup.objects.filter(year=year, code__in=codes).only("code", "name", "base_points", "average_cost")
    }
    previous = dict(DrgGroup.objects.filter(year=year - 1, code__in=codes).values_list("code", "name"))
    rows = []
    for proposal in proposals:
        row = current.get(proposal.drg_code)
        if row is not None:
            name, source = row.name, "current"
        elif proposal.drg_code in previous:
            name, source = previous[proposal.drg_code], "previous"
        else:
            name, source = proposal.drg_code, "code"
        rows.append(CalibrationRow(
            proposal=proposal,
            name=name,
            name_source=source,
            current_base_points=row.base_points if row is not None else None,
            current_average_cost=row.average_cost if row is not None else None,
        ))
    return rows


def adopt(user, year, codes: Iterable[str], params: DrgParams | None = None, *, confirm_cv=False,
          expected: Mapping[str, Decimal] | None = None) -> dict:
    """Write the chosen groups' proposed base points and average cost into the year's catalogue, in one
    transaction, with a history record (reason `CHANGE_REASON`, the acting user) per row written.

    Existing rows keep their name, bed-day points and flags; a missing row takes name, bed-day points and
    flags from the same code's row of the year before (the code as name when there is none). A group
    whose CV exceeds the threshold is adopted only when chosen AND `confirm_cv` is true. Any refusal
    writes nothing. Returns {"updated", "created", "unchanged", "reviewed"} counts ("reviewed": adopted
    groups over the CV threshold).
    """
    year = check_year(year)
    _require(user, roles={Role.CITY}, action="采纳DRG基准点数测算结果（仅市医保局可采纳）")
    chosen = sorted({str(code).strip() for code in codes if str(code).strip()})
    if not chosen:
        raise SettlementError("请至少选择一个病组")
    if params is None:
        params, _ = calibration_params(year)
    rows = {row.code: row for row in preview(year, params)}

    unknown = [code for code in chosen if code not in rows]
    if unknown:
        first, last = history_years(year)
        raise SettlementError(f"以下病组在{first}至{last}年没有可测算的病例，不能采纳：{'、'.join(unknown)}")
    flagged = [code for code in chosen if rows[code].cv_exceeded]
    if flagged and not confirm_cv:
        raise SettlementError(
            f"以下病组组内变异系数超过{params.cv_threshold}，需复核后才能采纳：{'、'.join(flagged)}；"
            f"复核后请勾选“已复核变异系数超限的病组，确认采纳”，未写入任何病组",
        )
    if expected is not None:
        changed = [code for code in chosen if expected.get(code) != rows[code].proposal.base_points]
        if changed:
            raise SettlementError(
                f"以下病组的测算结果与页面显示的不一致（测算后病例数据可能已变化）：{'、'.join(changed)}；请重新测算后再采纳",
            )

    summary = {"updated": 0, "created": 0, "unchanged": 0, "reviewed": len(flagged)}
    history_user = user if user is not None and user.pk else None
    try:
        with transaction.atomic():
            existing = {
                g.code: g
                for g in DrgGroup.objects.select_for_update().filter(year=year, code__in=chosen).order_by("pk")
            }
            previous = {g.code: g for g in DrgGroup.objects.filter(year=year - 1, code__in=chosen)}
            to_update, to_create = [], []
            for code in chosen:
                proposal = rows[code].proposal
                group = existing.get(code)
                if group is None:
                    template = previous.get(code)
                    to_create.append(DrgGroup(
                        year=year, code=code, name=template.name if template else code,
                        base_points=proposal.base_points, average_cost=proposal.average_cost,
                        bed_day_points=template.bed_day_points if template else None,
                        same_price=template.same_price if template else False,
                        tcm_support=template.tcm_support if template else False,
                    ))
                elif (group.base_points, group.average_cost) == (proposal.base_points, proposal.average_cost):
                    summary["unchanged"] += 1
                else:
                    group.base_points, group.average_cost = proposal.base_points, proposal.average_cost
                    to_update.append(group)
            if to_update:
                bulk_update_with_history(
                    to_update, DrgGroup, ["base_points", "average_cost"],
                    default_user=history_user, default_change_reason=CHANGE_REASON,
                )
            if to_create:
                bulk_create_with_history(
                    to_create, DrgGroup, default_user=history_user, default_change_reason=CHANGE_REASON,
                )
    except IntegrityError:
        # A row of the year was added for one of the codes after the lock above: adopt again.
        raise SettlementError(f"{year}年度病组目录正在被修改，请稍后重新采纳") from None
    summary["updated"], summary["created"] = len(to_update), len(to_create)
    return summary
