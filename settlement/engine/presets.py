"""Policy presets for the seed cities (shared/seeds), loaded as PaymentPolicy rows the bureau can edit.

A preset names only what the city's document fixes; the rest comes from the scheme's params_class
defaults. A preset key the scheme's parameters do not have is skipped (and reported), so a scheme
module may name its fields as it likes without breaking the loader.
"""
import dataclasses

from django.core.exceptions import ValidationError
from django.db import transaction

from alliances.scope import write_refusal
from settlement.approval import Refused, approve, enter_lock, last_changed_by, require_approver, require_four_eyes
from settlement.models import ApprovalStatus

from .base import policy_schemes
from .models import PaymentPolicy
from .params import defaults_of, from_json

PRESETS = {
    "huzhou": {
        "label": "湖州",
        "policies": {
            # [HZ §2]: 85% kept / 85% borne, assessment moves each by at most 5 points.
            "capitation": {
                "retention": "0.85", "overspend_share": "0.85", "max_bonus_up": "5", "max_bonus_down": "5",
                "disease_add_mode": "add_all", "visit_types": ["普通门诊", "慢病门诊"], "standard_valid_years": 2,
            },
        },
    },
    "panzhihua": {
        "label": "攀枝花",
        "policies": {
            # [PZH §4]: 80% of surplus; overspend 60/40 up to 10% of Q, beyond it the institution alone.
            "special_outpatient": {
                "surplus_retention": "0.80", "overspend_mode": "tiered", "overspend_tier": "0.10",
                "fund_share_in_tier": "0.40", "prepayment_ratio": "0.95", "risk_a": "0.2", "risk_b": "0.3",
            },
            # The 100 元 fee per person-year is the default ServicePackage's (contracts data); the policy
            # holds the mid-year advance of 50%.
            "family_doctor": {"advance_ratio": "0.50"},
        },
    },
    "kaifeng": {
        "label": "开封",
        "policies": {
            # [KF §4–§6]: 结余奖励，超支不补; 5% deposit returned in full at a score of 90.
            "alliance_budget": {
                "surplus_retention": "1.00", "overspend_covered": "0.00", "deposit_ratio": "0.05",
                "full_return_score": "90", "prepayment_ratio": "0.95",
            },
        },
    },
    # Every registered scheme at its params_class defaults, for a city without a seed document (or for
    # the schemes its document leaves out). Expanded by load_preset, so code that lists what the seed
    # cities name (the demo) does not count it as naming every scheme.
    "defaults": {"label": "默认参数", "policies": {}, "every_scheme": True},
}

CITY_BY_LABEL = {preset["label"]: key for key, preset in PRESETS.items()}
PRESET_REASON_PREFIX = "加载"


class PresetError(Exception):
    pass


def preset_choices():
    return [(key, preset["label"]) for key, preset in PRESETS.items()]


def preset_parameters(params_class, overrides):
    """(parameters JSON, skipped keys) for one scheme: defaults, then the preset's known keys."""
    names = {f.name for f in dataclasses.fields(params_class)}
    data = defaults_of(params_class)
    skipped = sorted(set(overrides) - names)
    data.update({k: v for k, v in overrides.items() if k in names})
    from_json(params_class, data)  # a preset that does not validate is a bug: fail loudly
    return data, skipped


def load_preset(city, year, region=None, user=None, approve=False):
    """Create or refresh the city's policies for `year`; approved policies are never overwritten.

    Returns a list of Chinese lines describing what happened.
    """
    key = CITY_BY_LABEL.get(city, city)
    if key not in PRESETS:
        raise PresetError(f"没有“{city}”的政策预设，可选：{'、'.join(p['label'] for p in PRESETS.values())}")
    preset = PRESETS[key]
    schemes = policy_schemes()
    if approve:
        require_approver(user, "审批支付政策")
    policies = {scheme: {} for scheme in schemes} if preset.get("every_scheme") else preset["policies"]
    report = []
    with transaction.atomic():
        for scheme, overrides in policies.items():
            rule = schemes.get(scheme)
            if rule is None:
                report.append(f"{scheme}：该支付方案尚未启用，跳过")
                continue
            data, skipped = preset_parameters(rule.params_class, overrides)
            policy = PaymentPolicy.objects.filter(scheme=scheme, year=year, region=region).first()
            if policy is not None and policy.status == ApprovalStatus.APPROVED:
                report.append(f"{policy}已审批，未覆盖")
                continue
            if policy is None:
                policy = PaymentPolicy(scheme=scheme, year=year, region=region)
            refusal = write_refusal(policy, user) if user is not None else None
            if refusal:
                raise PresetError(refusal)
            name = f"{preset['label']}预设"
            if policy.pk is None or (policy.name, policy.parameters) != (name, data):
                policy.name = name
                policy.parameters = data
                # The history names the preset and who loaded it: `policy show` tells a preset's values
                # from later changes by this record.
                policy._change_reason = f"{PRESET_REASON_PREFIX}{preset['label']}预设"
                if user is not None and user.pk:
                    policy._history_user = user
                policy.save()
            if approve:
                # Four eyes: whoever loaded (changed) the draft cannot approve it too; a draft another
                # user loaded with these very values may be approved by this one.
                require_four_eyes(user, [policy], last_changed_by(PaymentPolicy, [policy.pk]), "审批支付政策",
                                  act="加载或修改")
                enter_lock(policy, user, status=ApprovalStatus.APPROVED)
            line = f"{policy}：已{'加载并审批' if approve else '加载（待审批）'}"
            if skipped:
                line += f"；本方案无以下参数，已忽略：{'、'.join(skipped)}"
            report.append(line)
    return report


def approve_policy(policy, user=None):
    def parameters_valid(row):
        try:
            row.typed_parameters()
        except ValidationError as exc:
            raise Refused(f"{row}的参数有误，不能审批：{'；'.join(exc.messages)}") from None
        except Exception as exc:
            raise Refused(f"{row}的参数有误，不能审批：{exc}") from None

    return approve(policy, user, draft=ApprovalStatus.DRAFT, approved=ApprovalStatus.APPROVED,
                   what="审批支付政策", check=parameters_valid)
