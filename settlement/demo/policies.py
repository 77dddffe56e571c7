"""Approved payment policies of the demo year for every registered scheme, so staff can settle at once.

The seed cities' presets come first (Huzhou capitation, Panzhihua special outpatient and family doctor,
Kaifeng alliance budget); a scheme no preset names gets an approved city-wide policy of its
params_class defaults. Existing policies are left alone (load_preset never overwrites an approved one).
"""
from django.utils import timezone

from settlement.engine.base import registered_schemes
from settlement.engine.models import PaymentPolicy
from settlement.engine.params import defaults_of, from_json
from settlement.engine.presets import PRESETS, approve_policy, load_preset
from settlement.models import ApprovalStatus

# Which seed city's preset each scheme takes in the demo (SPEC §6 cites these cities per scheme).
DEMO_PRESETS = {"capitation": "huzhou", "special_outpatient": "panzhihua", "family_doctor": "panzhihua",
                "alliance_budget": "kaifeng"}


def write_policies(year, approver=None, log=print):
    """Returns the number of policies created."""
    before = PaymentPolicy.objects.filter(year=year, region__isnull=True).count()
    for city in sorted(set(DEMO_PRESETS.values())):
        # Loaded by the seed itself, approved by the demo's city user: four eyes (approval.py)
        # refuses one person doing both, so the seed does not pretend to be that person.
        load_preset(city, year)
    drafts = PaymentPolicy.objects.filter(year=year, region__isnull=True, status=ApprovalStatus.DRAFT)
    for policy in drafts.order_by("scheme"):
        approve_policy(policy, approver)
    named = {scheme for preset in PRESETS.values() for scheme in preset["policies"]}
    for scheme, rule in sorted(registered_schemes().items()):
        if scheme in named or PaymentPolicy.objects.filter(scheme=scheme, year=year, region__isnull=True).exists():
            continue
        data = defaults_of(rule.params_class)
        from_json(rule.params_class, data)  # defaults that do not validate are a bug: fail loudly
        PaymentPolicy.objects.create(
            scheme=scheme, year=year, region=None, name="默认参数", parameters=data,
            status=ApprovalStatus.APPROVED, approved_by=approver, approved_at=timezone.now(),
        )
    created = PaymentPolicy.objects.filter(year=year, region__isnull=True).count() - before
    log(f"  支付政策：{created} 项（已审批）")
    return created
