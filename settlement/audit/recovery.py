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

A confirmed finding on no single claim or case but summed over several (FRQ01, FRQ02, REL01) is split
over them (`split`): each item's share is its own part of the 涉及金额 (the rule's `shares`), deducted in
the unit whose A holds that item, through the same `recovered_claims` / `recovered_cases` as a finding on
one item; each share is deducted once, like a whole finding. The shares are read as the items are now:
what they no longer cover (an item deleted since) is never spread over the others.

What no current run deducts (a finding whose item no run's A holds, the shares no run's A holds, the
unsplittable rest) is a stand-alone recovery of the finding's institution for exactly that rest
(`standalone`).
"""
import dataclasses
from decimal import Decimal

from django.db.models import DecimalField, Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from settlement.engine.base import RunContext, get_rule
from settlement.engine.models import RunStatus, SettlementRun
from settlement.engine.params import from_json
from settlement.models import InpatientCase, OutpatientClaim

from .models import Finding, FindingStatus, RecoveryItem
from .registry import registered_rules

ZERO = Decimal("0.00")


@dataclasses.dataclass(frozen=True)
class Deduction:
    """A finding deducted whole (claim_id and case_id None) or one share of it, on that claim or case."""

    finding_id: int
    amount: Decimal
    claim_id: int | None = None
    case_id: int | None = None

    @property
    def key(self):
        return (self.finding_id, self.claim_id, self.case_id)


def _confirmed(year):
    return Finding.objects.filter(year=year, status=FindingStatus.CONFIRMED, amount__gt=0)


def _recoverable(year):
    """Confirmed findings of the year that deduct something from one claim or case."""
    return _confirmed(year).filter(Q(claim__isnull=False) | Q(case__isnull=False))


def split(amount, shares):
    """A finding's 涉及金额 over its items: (the deductions, the rest left stand-alone).

    In item order (claims, then cases, by id) each item takes its share, its positive part, but never more
    than is left: the deductions never add up to more than the amount, and where the shares add up to it
    exactly (every share ≥ 0) each item takes exactly its share and nothing is left. An under-paid item
    (a negative REL01 share) thus lowers what the last items take by as much, and shares that no longer
    cover the amount (an item deleted since) leave the difference as the rest."""
    left, taken = amount, []
    for share in sorted(shares, key=lambda s: (s.case_id is not None, s.claim_id or 0, s.case_id or 0)):
        part = min(max(share.amount, ZERO), left)
        if part > 0:
            taken.append(Deduction(share.finding_id, part, share.claim_id, share.case_id))
            left -= part
    return taken, left


def split_findings(year):
    """finding id → its shares as deductions, for the year's confirmed findings that are split."""
    rules = {code: rule for code, rule in registered_rules().items() if rule.splits}
    rows = (_confirmed(year).filter(rule__in=list(rules), claim__isnull=True, case__isnull=True)
            .values_list("pk", "rule", "amount", "evidence_data"))
    by_rule, amounts = {}, {}
    for pk, code, amount, data in rows:
        by_rule.setdefault(code, {})[pk] = data or {}
        amounts[pk] = amount
    shares = {}
    for code, findings in by_rule.items():
        for share in rules[code].shares(year, findings):
            shares.setdefault(share.finding_id, []).append(share)
    return {pk: split(amount, shares.get(pk, ()))[0] for pk, amount in amounts.items()}


def current_runs(year=None):
    """The latest version of each (scheme, region) settlement of the year (or of every year) that did not fail."""
    newer = SettlementRun.objects.filter(
        scheme=OuterRef("scheme"), year=OuterRef("year"), region=OuterRef("region"), version__gt=OuterRef("version"),
    )
    runs = SettlementRun.objects.exclude(status=RunStatus.FAILED).exclude(Exists(newer))
    return runs if year is None else runs.filter(year=year)


def _current_items():
    """The RecoveryItems of the outer Finding (OuterRef) that the current runs hold."""
    return RecoveryItem.objects.filter(unit__run__in=current_runs().values("pk"), finding=OuterRef("pk"))


def deducted_in_a_current_run():
    """Exists(…) for a Finding queryset: the finding is deducted by the current run of some settlement."""
    return Exists(_current_items())


def taken_elsewhere(scheme, year):
    """Keys (finding, claim, case) of what the current run of another scheme already deducts."""
    return set(
        RecoveryItem.objects.filter(unit__run__in=current_runs(year).exclude(scheme=scheme).values("pk"))
        .values_list("finding_id", "claim_id", "case_id")
    )


def deductions(rule, ctx, params, unit_codes) -> dict[str, list[Deduction]]:
    """unit code → what of the confirmed findings its A paid (whole findings and shares), for the units
    of a run being gathered."""
    taken = taken_elsewhere(ctx.scheme, ctx.year)
    by_claim, by_case = {}, {}

    def add(claim_id, case_id, deduction):
        (by_claim.setdefault(claim_id, []) if claim_id else by_case.setdefault(case_id, [])).append(deduction)

    for pk, claim_id, case_id, amount in _recoverable(ctx.year).values_list("pk", "claim_id", "case_id", "amount"):
        if (pk, None, None) not in taken:
            add(claim_id, case_id, Deduction(pk, amount))
    for parts in split_findings(ctx.year).values():
        for d in parts:
            if d.key not in taken:
                add(d.claim_id, d.case_id, d)
    units = {}
    if by_claim:
        for claim_id, code in rule.recovered_claims(ctx, params, unit_codes, list(by_claim)).items():
            units.setdefault(code, []).extend(by_claim[claim_id])
    if by_case:
        for case_id, code in rule.recovered_cases(ctx, params, unit_codes, list(by_case)).items():
            units.setdefault(code, []).extend(by_case[case_id])
    return {code: sorted(items, key=_order) for code, items in units.items()}


def _order(d):
    return (d.finding_id, d.claim_id or 0, d.case_id or 0)


def store(run_units, taken):
    """One RecoveryItem per deducted finding or share of the stored units (`taken`: unit code → deductions)."""
    RecoveryItem.objects.bulk_create([
        RecoveryItem(unit=unit, finding_id=d.finding_id, claim_id=d.claim_id, case_id=d.case_id, amount=d.amount)
        for unit in run_units for d in taken.get(unit.unit_code, ())
    ], batch_size=1000)


def total(items):
    return sum((d.amount for d in items), Decimal("0.00"))


def deducted_items(result):
    """What a unit result deducted, in finding order, a split finding's shares item by item (the drill-down
    of its 违规扣款)."""
    return (
        RecoveryItem.objects.filter(unit__run_id=result.run_id, unit__unit_code=result.unit_code)
        .select_related("finding", "finding__institution", "finding__claim", "finding__case",
                        "claim", "claim__institution", "case", "case__institution")
        .order_by("finding_id", "claim_id", "case_id")
    )


def pending(result) -> list[Deduction]:
    """What was confirmed for the unit since its run took its deductions (待下一版本扣回): whole findings
    and shares, in finding order."""
    run = result.run
    rule = get_rule(run.scheme)
    ctx = RunContext(scheme=run.scheme, year=run.year, region_code=run.region_code)
    params = from_json(rule.params_class, run.parameters)
    now = deductions(rule, ctx, params, [result.unit_code]).get(result.unit_code, [])
    done = set(deducted_items(result).values_list("finding_id", "claim_id", "case_id"))
    return [d for d in now if d.key not in done]


def subjects_of(deductions):
    """({finding id: Finding}, {claim id: claim}, {case id: case}) of these deductions, three reads."""
    findings = Finding.objects.select_related("institution", "claim", "case").in_bulk({d.finding_id for d in deductions})
    claims = OutpatientClaim.objects.select_related("institution").in_bulk({d.claim_id for d in deductions if d.claim_id})
    cases = InpatientCase.objects.select_related("institution").in_bulk({d.case_id for d in deductions if d.case_id})
    return findings, claims, cases


def deducted_in_current_runs():
    """Σ of what the current runs deduct of a finding (an expression for a Finding queryset)."""
    items = _current_items().order_by().values("finding").annotate(total=Sum("amount")).values("total")
    money = DecimalField(max_digits=16, decimal_places=2)
    return Coalesce(Subquery(items, output_field=money), Value(ZERO), output_field=money)


def standalone_of(findings):
    """Of `findings`, the confirmed ones with something to recover that the current runs do not deduct in
    full, each annotated with what they deduct (`deducted`) and the rest to recover on its own (`rest`)."""
    return (
        findings.filter(status=FindingStatus.CONFIRMED, amount__gt=0)
        .annotate(deducted=deducted_in_current_runs()).annotate(rest=F("amount") - F("deducted"))
        .filter(rest__gt=0)
    )


def standalone(year, findings=None):
    """The year's stand-alone recoveries (of `findings`, by default all): each rest is recovered from its
    institution outside any statement."""
    findings = Finding.objects.all() if findings is None else findings
    return (
        standalone_of(findings.filter(year=year))
        .select_related("institution", "region").order_by("institution__code", "rule", "pk")
    )
