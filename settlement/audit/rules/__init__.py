"""Audit rules of SPEC §9, one module each; importing the package registers them."""
from . import benefits, claims, contracts, inpatient, upcoding  # noqa: F401
from .base import AuditContext, AuditRule, registered_rules  # noqa: F401
