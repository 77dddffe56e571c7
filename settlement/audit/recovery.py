"""Recovery (违规扣款, SPEC §9): confirmed findings deducted from the year-end amount of the unit that paid the item.

The item is the finding's claim or case. It was paid by the unit whose A contains the claim (each
scheme says so through `recovered_claims`, the set-based twin of its `claims_for_unit` drill-down), or to
which the case was assigned by the precedence of SPEC §3 (`recovered_cases`). The deduction is the
finding's 涉及金额, its positive part: a finding whose amount is 0 or negative (a signal, an under-payment)
deducts nothing.

A run takes the deductions with its gathered inputs (`RunUnit.recovery` and one `RecoveryItem` per
finding) and the engine subtracts them at compute time, so an approved run never changes: a finding
confirmed later is *pending* for the unit (`pending`) until the next version. Where the claim sits in
the A of two schemes (a 普通门诊 claim of a resident both in a capitation alliance and in a global
budget), it is deducted once: by the scheme whose current run took it first.

A confirmed finding on no single claim or case (FRQ01, FRQ02, REL01 over several items), or whose item
no current run's A contains, is a stand-alone recovery of its institution (`standalone`).
"""
import dataclasses
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q

from settlement.engine.base import RunContext, get_rule
from settlement.engine.models import RunStatus, SettlementRun
from settlement.engine.params import from_json

from .models import Finding, FindingStatus, RecoveryItem


@dataclasses.dataclass(frozen=True)
class Deduction:
    finding_id: int
    amount: Decimal


def _recoverable(year):
    """Confirmed findings of the year that deduct something from one claim or case."""
    return Finding.objects.filter(year=year, status=FindingStatus.CONFIRMED, amount__gt=0).filter(
        Q(claim__isnull=False) | Q(case__isnull=False),
    )


def current_runs(year=None):
    """The latest version of each (scheme, region) settlement of the year (or of every year) that did not fail."""
    newer = SettlementRun.objects.filter(
        scheme=OuterRef("scheme"), year=OuterRef("year"), region=OuterRef("region"), version__gt=OuterRef("version"),
    )
    runs = SettlementRun.objects.exclude(status=RunStatus.FAILED).exclude(Exists(newer))
    return runs if year is None else runs.filter(year=year)


def deducted_in_a_current_run():
    """Exists(…) for a Finding queryset: the finding is deducted by the current run of some settlement."""
    return Exists(RecoveryItem.objects.filter(unit__run__in=current_runs().values("pk"), finding=OuterRef("pk")))


def taken_elsewhere(scheme, year):
    """Findings already deducted by the current run of another scheme."""
    return RecoveryItem.objects.filter(
        unit__run__in=current_runs(year).exclude(scheme=scheme).values("pk"),
    ).values("finding_id")


def deductions(rule, ctx, params, unit_codes) -> dict[str, list[Deduction]]:
    """unit code → the confirmed findings its A paid, for the units of a run being gathered."""
    rows = list(
        _recoverable(ctx.year).exclude(pk__in=taken_elsewhere(ctx.scheme, ctx.year))
        .order_by("pk").values_list("pk", "claim_id", "case_id", "amount")
    )
    by_claim, by_case = {}, {}
    for pk, claim_id, case_id, amount in rows:
        target = by_claim.setdefault(claim_id, []) if claim_id else by_case.setdefault(case_id, [])
        target.append(Deduction(pk, amount))
    units = {}
    if by_claim:
        for claim_id, code in rule.recovered_claims(ctx, params, unit_codes, list(by_claim)).items():
            units.setdefault(code, []).extend(by_claim[claim_id])
    if by_case:
        for case_id, code in rule.recovered_cases(ctx, params, unit_codes, list(by_case)).items():
            units.setdefault(code, []).extend(by_case[case_id])
    return {code: sorted(items, key=lambda d: d.finding_id) for code, items in units.items()}


def store(run_units, taken):
    """One RecoveryItem per deducted finding of the stored units (`taken`: unit code → deductions)."""
    RecoveryItem.objects.bulk_create([
        RecoveryItem(unit=unit, finding_id=d.finding_id, amount=d.amount)
        for unit in run_units for d in taken.get(unit.unit_code, ())
    ], batch_size=1000)


def total(items):
    return sum((d.amount for d in items), Decimal("0.00"))


def deducted_items(result):
    """What a unit result deducted, finding by finding in finding order (the drill-down of its 违规扣款)."""
    return (
        RecoveryItem.objects.filter(unit__run_id=result.run_id, unit__unit_code=result.unit_code)
        .select_related("finding", "finding__institution", "finding__claim", "finding__case").order_by("finding_id")
    )


def pending(result):
    """Findings confirmed for the unit since its run took its deductions: 待下一版本扣回."""
    run = result.run
    rule = get_rule(run.scheme)
    ctx = RunContext(scheme=run.scheme, year=run.year, region_code=run.region_code)
    params = from_json(rule.params_class, run.parameters)
    now = deductions(rule, ctx, params, [result.unit_code]).get(result.unit_code, [])
    done = set(deducted_items(result).values_list("finding_id", flat=True))
    ids = [d.finding_id for d in now if d.finding_id not in done]
    return Finding.objects.filter(pk__in=ids).select_related("institution", "claim", "case").order_by("pk")


def standalone_of(findings):
    """Of `findings`, the confirmed ones with something to recover that no current run deducts."""
    return findings.filter(status=FindingStatus.CONFIRMED, amount__gt=0).exclude(deducted_in_a_current_run())


def standalone(year):
    """The year's stand-alone recoveries: each is recovered from its institution outside any statement."""
    return (
        standalone_of(Finding.objects.filter(year=year))
        .select_related("institution").order_by("institution__code", "rule", "pk")
    )
