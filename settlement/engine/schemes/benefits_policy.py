"""Scheme `benefits`: the benefit engine's modifiers as a policy (SPEC §6.8); it settles nothing."""
from settlement.benefits.params import BenefitParams
from settlement.models import Scheme

from ..base import PolicyOnly, register


@register
class BenefitsPolicy(PolicyOnly):
    scheme = Scheme.BENEFITS
    params_class = BenefitParams
