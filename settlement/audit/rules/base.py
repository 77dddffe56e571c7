"""The contract between the audit service and each audit rule (SPEC §9).

A rule is a plug-in: one set-based SELECT over the year in PostgreSQL returning one row per finding,
with the columns of `COLUMNS`. The service keys, upserts and expires the rows (services.py); a rule
knows its thresholds only through the `audit` policy parameters.

Rules that would each make the same pass over a big table name it as a `SharedPass`: the service runs
each pass once per audit run into a temporary table and hands its name to the rules in the context.
"""
import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from alliances.models import Institution, Region
from contracts.models import Contract, InsuredPerson
from settlement.models import DrgGroup, FamilyDoctorService, InpatientCase, OutpatientClaim

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


_REGISTRY: dict[str, AuditRule] = {}


def register(rule_class):
    _REGISTRY[rule_class.code] = rule_class()
    return rule_class


def registered_rules() -> dict[str, AuditRule]:
    return dict(sorted(_REGISTRY.items()))
