"""The contract between the settlement engine and each payment scheme (SPEC §6–§7).

A scheme is a plug-in with three steps, read top to bottom:
1. `gather(ctx)`: set-based SQL aggregates into one small typed input per unit;
2. `compute(inputs, params, paid)`: a pure function of Decimal in, `UnitOutcome` out — no ORM, no I/O;
3. persistence is the engine's: one transaction per unit, storing every figure of the outcome.

Policy parameters are a frozen dataclass per scheme (`params_class`), stored by the engine as rows the
bureau edits; a formula never holds a literal ratio.
"""
import dataclasses
import datetime
from abc import ABC, abstractmethod
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def q2(value) -> Decimal:
    """Round half-up to 分 (SPEC §3: each unit's Q and A are rounded once)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def q4(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def q6(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a run settles: one scheme, one year, the whole city or one county."""

    scheme: str
    year: int
    region_code: str | None = None  # None = whole city

    @property
    def first_day(self):
        return datetime.date(self.year, 1, 1)

    @property
    def last_day(self):
        return datetime.date(self.year, 12, 31)


@dataclasses.dataclass(frozen=True)
class UnitOutcome:
    """Every figure of one settled unit, in the sign conventions of SPEC §5.

    quota Q, actual A, surplus S = Q − A, unit_part (the unit's part of S: positive when it keeps
    surplus, negative when it bears overspend), fund_part = S − unit_part, entitled E,
    paid (已拨付, including A where the scheme pays claims as they occur), recovery (违规扣款: the
    confirmed audit findings deducted, SPEC §9), amount = E − paid − recovery.
    `details` holds the intermediates (heads, person-months, quota by class, A inside/outside, ratios…)
    as JSON-safe values; Decimals are kept as strings by the engine when stored.
    """

    unit_code: str
    unit_name: str
    quota: Decimal
    actual: Decimal
    surplus: Decimal
    unit_part: Decimal
    fund_part: Decimal
    entitled: Decimal
    paid: Decimal
    amount: Decimal
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    recovery: Decimal = ZERO

    @classmethod
    def settle(cls, unit_code, unit_name, *, quota, actual, unit_part, entitled, paid, details=None, warnings=()):
        """The outcome from the figures a scheme decides; S, the fund's part and the amount follow."""
        surplus = quota - actual
        return cls(
            unit_code=unit_code, unit_name=unit_name, quota=quota, actual=actual, surplus=surplus,
            unit_part=unit_part, fund_part=surplus - unit_part, entitled=entitled, paid=paid,
            amount=entitled - paid, details=details or {}, warnings=tuple(warnings),
        )

    def deducting(self, recovery):
        """The same outcome with the unit's 违规扣款 taken off its year-end amount (SPEC §9).

        Schemes compute without it: a deduction is no policy figure, so a simulation deducts the
        base run's stored amount exactly as the run did."""
        recovery = q2(recovery or ZERO)
        return dataclasses.replace(self, recovery=recovery, amount=self.entitled - self.paid - recovery)

    def __post_init__(self):
        # The identities every statement relies on; a scheme that breaks one is a bug, not data.
        if self.surplus != self.quota - self.actual:
            raise ValueError(f"{self.unit_code}: S ≠ Q − A")
        if self.unit_part + self.fund_part != self.surplus:
            raise ValueError(f"{self.unit_code}: unit part + fund part ≠ S")
        if self.amount != self.entitled - self.paid - self.recovery:
            raise ValueError(f"{self.unit_code}: amount ≠ E − paid − recovery")


class SchemeRule(ABC):
    """One payment scheme. Subclasses are registered with `register` and looked up by `scheme`."""

    scheme: ClassVar[str]
    params_class: ClassVar[type]
    # True where the fund pays each claim's 统筹支付 as it occurs (SPEC §6: only capitation),
    # so A counts as already paid.
    actual_counts_as_paid: ClassVar[bool] = False
    # False for a policy that is not settled (the benefit engine's modifiers, SPEC §6.8): it has
    # parameters the bureau edits and approves like a scheme's, but no run, unit or statement.
    settles: ClassVar[bool] = True

    # How a unit's figures are shown (settlement/engine/display.py), so that every figure on a page
    # either adds up from the rows under it or says how it is rounded (issue 18, finding 2):
    # detail key → Chinese label;
    detail_labels: ClassVar[dict] = {}
    # table detail → (money column, the figure its rows add up to: a detail key or "@<result field>",
    # how that figure is rounded);
    detail_totals: ClassVar[dict] = {}
    # result field → (detail keys, or "table.column" sums, that add up to it; how it is rounded);
    figure_parts: ClassVar[dict] = {}
    # result field → how it is worked out, where it is not a sum of shown rows.
    figure_notes: ClassVar[dict] = {}

    @abstractmethod
    def gather(self, ctx: RunContext, params) -> dict[str, Any]:
        """unit_code → typed inputs (a dataclass carrying unit_name and every gathered figure)."""

    @abstractmethod
    def compute(self, inputs, params, paid: Decimal) -> UnitOutcome:
        """Pure: the unit's outcome from its inputs, the policy parameters and 已拨付 (payments rows)."""

    def finish(self, ctx: RunContext, params, outcomes: list[UnitOutcome]) -> list[str]:
        """Checks across units after all are computed (e.g. Σ payments = pool budget); returns warnings."""
        return []

    # --- Optional hooks (added for the engine; a scheme that does not need them keeps the defaults) ---

    def prepayment(self, ctx: RunContext, params, month: int) -> dict[str, Decimal]:
        """unit_code → the month's prepayment (月度预拨); empty where the scheme does not prepay."""
        return {}

    def claims_for_unit(self, ctx: RunContext, params, unit_code: str):
        """The OutpatientClaim queryset behind a unit's A (for drill-down), or None when not applicable."""
        return None

    def recovered_claims(self, ctx: RunContext, params, unit_codes, claim_ids) -> dict[int, str]:
        """claim id → the unit (one of `unit_codes`) whose A contains the claim, for the claims given
        (SPEC §9 违规扣款). By default through `claims_for_unit`, one small query per unit."""
        found = {}
        for code in unit_codes:
            claims = self.claims_for_unit(ctx, params, code)
            if claims is None:
                continue
            for pk in claims.filter(pk__in=list(claim_ids)).values_list("pk", flat=True):
                found.setdefault(pk, code)
        return found

    def recovered_cases(self, ctx: RunContext, params, unit_codes, case_ids) -> dict[int, str]:
        """case id → the unit (one of `unit_codes`) the case was assigned to; none outside the inpatient schemes."""
        return {}

    def approval_blockers(self, ctx: RunContext) -> list[str]:
        """Chinese reasons why the run can't be approved yet (e.g. requests still 待审核); empty = none."""
        return []

    # --- Simulation hooks (SPEC §11; settlement/engine/simulation.py) ---

    # The parameters `gather` reads: a simulation changing one of them gathers again (into the
    # simulation only). None = unknown, so any change gathers again.
    gather_parameters: ClassVar[frozenset[str] | None] = None
    # The factors (see simulation.Factors) that apply to this scheme, each mapped to where it acts:
    # "inputs" = on the stored inputs (`scale_inputs`), "gather" = inside the set-based gather.
    simulation_factors: ClassVar[dict[str, str]] = {}

    def scale_inputs(self, inputs, factors):
        """The unit's stored inputs with the "inputs" factors applied (pure); unchanged by default."""
        return inputs

    def simulation_gather(self, ctx: RunContext, params, factors) -> dict[str, Any]:
        """A fresh gather for a simulation, with the "gather" factors applied inside it."""
        return self.gather(ctx, params)


_REGISTRY: dict[str, SchemeRule] = {}


def register(rule_class):
    _REGISTRY[rule_class.scheme] = rule_class()
    return rule_class


def get_rule(scheme: str) -> SchemeRule:
    from . import schemes  # noqa: F401  (importing the package registers every scheme)

    try:
        return _REGISTRY[scheme]
    except KeyError:
        raise KeyError(f"未知的支付方案“{scheme}”") from None


def registered_schemes():
    """The payment schemes that settle (SPEC §5 `<scheme>`)."""
    from . import schemes  # noqa: F401

    return {name: rule for name, rule in _REGISTRY.items() if rule.settles}


def policy_schemes():
    """Every scheme with a policy: the payment schemes and the policies that do not settle."""
    from . import schemes  # noqa: F401

    return dict(_REGISTRY)


class PolicyOnly(SchemeRule):
    """A policy without a settlement: gather and compute are never called."""

    settles = False

    def gather(self, ctx, params):
        raise NotImplementedError(f"“{self.scheme}”不是结算方案")

    def compute(self, inputs, params, paid):
        raise NotImplementedError(f"“{self.scheme}”不是结算方案")
