"""Audit rules of SPEC §9, one module each; importing the package registers them.

BEN01 (needs the benefit engine's 应付统筹, §6.8) and REL01 (needs relocation filings) are not here
yet: their input tables do not exist in this branch. Each becomes one more module.
"""
from . import claims, contracts, inpatient, upcoding  # noqa: F401
from .base import AuditContext, AuditRule, registered_rules  # noqa: F401
