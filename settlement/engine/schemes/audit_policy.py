"""Scheme `audit`: the audit rules' thresholds as a policy (SPEC §9); it settles nothing."""
from settlement.audit.params import AuditParams
from settlement.models import Scheme

from ..base import PolicyOnly, register


@register
class AuditPolicy(PolicyOnly):
    scheme = Scheme.AUDIT
    params_class = AuditParams
