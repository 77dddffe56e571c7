"""The contract between the audit service and each audit rule (SPEC §9).

A rule is a plug-in: one set-based SELECT over the year in PostgreSQL returning one row per finding,
with the columns of `COLUMNS`. The service keys, upserts and expires the rows (services.py); a rule
knows its thresholds only through the `audit` policy parameters.

Rules that would each make the same pass over a big table name it as a `SharedPass`: the service runs
each pass once per audit run into a temporary table and hands its name to the rules in the context.
"""
import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

from alliances.models import Institution, Region
from contracts.models import Contract, InsuredPerson
from settlement.models import DrgGroup, FamilyDoctorService, InpatientCase, OutpatientClaim

from ..registry import register, registered_rules  # noqa: F401  (the rule modules register through here)

# What every rule's SELECT returns, in this order.
COLUMNS = (
    "subject", "region_id", "institution_id", "person_id", "claim_id", "case_id", "contract_id",
    "amount", "evidence", "evidence_data",
)

# Table names for the rules' SQL, from the models (never spelled twice).
TABLES = {
    "claim": OutpatientClaim._meta.db_table,
    "case": InpatientCase._meta.db_table,
    "institution": Institution._meta.db_table,
    "region": Region._meta.db_table,
    "person": InsuredPerson._meta.db_table,
    "drg_group": DrgGroup._meta.db_table,
    "contract": Contract._meta.db_table,
    "fd_service": FamilyDoctorService._meta.db_table,
}


@dataclasses.dataclass(frozen=True)
class AuditContext:
    year: int
    # SharedPass.name → the temporary table holding that pass's rows for this run.
    tables: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def table(self, shared_pass):
        return self.tables[shared_pass.name]

    @property
    def first_day(self):
        return f"{self.year:04d}-01-01"

    @property
    def last_day(self):
        return f"{self.year:04d}-12-31"

    def named(self, **extra):
        return {"year": self.year, "first_day": self.first_day, "last_day": self.last_day, **extra}


@dataclasses.dataclass(frozen=True)
class Share:
    """One claim's or case's part of a finding's 涉及金额 (exactly one of claim_id, case_id is set)."""

    finding_id: int
    claim_id: int | None
    case_id: int | None
    amount: Decimal


class SharedPass:
    """One pass several rules read (a candidate set), run once per audit run before those rules."""

    name: ClassVar[str]

    def select(self, ctx: AuditContext, params) -> tuple[str, dict]:
        """(SQL with %(name)s placeholders, its parameters): the rows the rules read."""
        raise NotImplementedError


class AuditRule:
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[str]
    finding_on: ClassVar[str]  # what a finding is about, for the rule list
    passes: ClassVar[tuple[SharedPass, ...]] = ()  # read through ctx.table(shared_pass)

    def select(self, ctx: AuditContext, params) -> tuple[str, dict]:
        """(SQL with %(name)s placeholders, its parameters): one row per finding, columns COLUMNS."""
        raise NotImplementedError

    # A rule whose findings sit on no single claim or case but sum over several (FRQ01, FRQ02, REL01)
    # says what each item's part of the 涉及金额 is, so that recovery deducts every part in the unit that
    # paid that item (SPEC §9). The parts are read now, from the items as they are: an item deleted or
    # re-uploaded since makes them no longer add up, which recovery leaves stand-alone (recovery.split).
    splits = False

    def shares(self, year: int, findings: dict[int, dict]) -> list[Share]:
        """The parts of these findings (id → evidence_data) of the year, one per item still there."""
        return []


def fund_paid_shares(findings: dict[int, dict], key: str) -> list[Share]:
    """Each claim listed under `key` in a finding's evidence, its 统筹支付 as its share (FRQ01, FRQ02)."""
    listed = {pk: [int(i) for i in data.get(key) or ()] for pk, data in findings.items()}
    paid = dict(
        OutpatientClaim.objects.filter(pk__in={i for ids in listed.values() for i in ids})
        .values_list("pk", "fund_paid")
    )
    return [Share(pk, claim_id, None, paid[claim_id])
            for pk, ids in listed.items() for claim_id in ids if claim_id in paid]


