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
    paid (已拨付, including A where the scheme pays claims as they occur), amount = E − paid.
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

    @classmethod
    def settle(cls, unit_code, unit_name, *, quota, actual, unit_part, entitled, paid, details=None, warnings=()):
        """The outcome from the figures a scheme decides; S, the fund's part and the amount follow."""
        surplus = quota - actual
        return cls(
            unit_code=unit_code, unit_name=unit_name, quota=quota, actual=actual, surplus=surplus,
            unit_part=unit_part, fund_part=surplus - unit_part, entitled=entitled, paid=paid,
            amount=entitled - paid, details=details or {}, warnings=tuple(warnings),
        )

    def __post_init__(self):
        # The identities every statement relies on; a scheme that breaks one is a bug, not data.
        if self.surplus != self.quota - self.actual:
            raise ValueError(f"{self.unit_code}: S ≠ Q − A")
        if self.unit_part + self.fund_part != self.surplus:
            raise ValueError(f"{self.unit_code}: unit part + fund part ≠ S")
        if self.amount != self.entitled - self.paid:
            raise ValueError(f"{self.unit_code}: amount ≠ E − paid")


class SchemeRule(ABC):
    """One payment scheme. Subclasses are registered with `register` and looked up by `scheme`."""

    scheme: ClassVar[str]
    params_class: ClassVar[type]
    # True where the fund pays each claim's 统筹支付 as it occurs (SPEC §6: only capitation),
    # so A counts as already paid.
    actual_counts_as_paid: ClassVar[bool] = False

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

    def approval_blockers(self, ctx: RunContext) -> list[str]:
        """Chinese reasons why the run can't be approved yet (e.g. requests still 待审核); empty = none."""
        return []


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


# Policies whose parameters are not a payment scheme's (the audit rules, SPEC §9): the kind's
# package registers its params_class here, so PaymentPolicy validates and describes them alike.
_POLICY_KINDS: dict[str, type] = {}


def register_policy_kind(name: str, params_class: type):
    _POLICY_KINDS[name] = params_class


def params_class_of(scheme: str) -> type:
    """The params_class of a payment scheme or of another policy kind; KeyError in Chinese if neither."""
    if scheme in _POLICY_KINDS:
        return _POLICY_KINDS[scheme]
    return get_rule(scheme).params_class


def policy_kinds():
    return dict(_POLICY_KINDS)


def registered_schemes():
    from . import schemes  # noqa: F401

    return dict(_REGISTRY)
