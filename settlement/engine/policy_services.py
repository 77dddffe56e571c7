"""Payment policies and approvals as services (SPEC §5 `policy` and `approve`), for every door.

The commands only parse arguments and print; the admin or a task can call the same functions:
- `set_parameters` changes named parameters of a (scheme, year, region) policy, validated against the
  scheme's parameter schema, and records the change in the policy's history;
- `describe` says, per parameter, its value and where the value came from (预设 / 默认 / 设置);
- `approve_year` approves a year's drafts of one kind as a named city-bureau user.

Provenance is derived, not stored: the parameters JSON holds values only, and a second "sources" map
would go stale the moment the admin's policy form edits the parameters. Instead a value equal to what
the last loaded preset gives is 预设 (a key the preset names) or 默认 (a key it leaves to the
defaults); any other value was set later, and the history row that last changed it says who and when.
"""
import dataclasses
import datetime
import json
import types
import typing
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from alliances.scope import write_refusal
from settlement.approval import LockedError, Refused, approve_drafts, require_approver
from settlement.benefits.services import approve_benefit_rules
from settlement.models import ApprovalStatus, CapitationStandard, Scheme, SpecialStandard

from .base import get_rule
from .codec import to_json_safe
from .models import PaymentPolicy
from .params import defaults_of, field_label, from_json, to_json
from .presets import CITY_BY_LABEL, PRESET_REASON_PREFIX, PRESETS, PresetError, approve_policy, load_preset
from .services import check_region, check_scheme, check_year
from .standards import approve_capitation_standards

SOURCE_PRESET = "预设"
SOURCE_DEFAULT = "默认"
SOURCE_SET = "设置"

# simple-history keeps the change reason in a varchar(100).
REASON_MAX = 100

# What `approve` approves (SPEC §5), with the Chinese name used in its messages.
APPROVABLE = {
    "policies": "支付政策",
    "capitation_standards": "门诊人头标准",
    "special_standards": "二类门特人头标准",
    "benefit_rules": "待遇政策表",
}

TRUE_WORDS = {"true", "1", "是", "y", "yes", "on"}
FALSE_WORDS = {"false", "0", "否", "n", "no", "off"}
LIST_SEPARATORS = ("，", "、")  # typed on a Chinese keyboard; read like ","


# --- lookups ---------------------------------------------------------------------------------


def find_user(username):
    """The acting user named on the command line; a missing or disabled one is refused by name."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise Refused(f"用户“{username}”不存在，请先用 create_user 创建")
    if not user.is_active:
        raise Refused(f"用户“{username}”已停用")
    return user


def scheme_label(scheme):
    return dict(Scheme.choices).get(scheme, scheme)


def where_label(region):
    return region.name if region is not None else "全市"


def find_policy(scheme, year, region_code=None):
    """The policy of exactly (scheme, year, region); a missing one is refused with what to do."""
    check_scheme(scheme, settling=False)
    year = check_year(year)
    region = check_region(region_code)
    policy = PaymentPolicy.objects.filter(scheme=scheme, year=year, region=region).select_related(
        "region", "approved_by",
    ).first()
    if policy is None:
        reason = f"未找到{year}年度{scheme_label(scheme)}（{where_label(region)}）的支付政策，可用 policy load 或 policy set 创建"
        if region is not None and PaymentPolicy.objects.filter(scheme=scheme, year=year, region__isnull=True).exists():
            reason += "；结算时将使用全市政策"
        raise Refused(reason)
    return policy


# --- policy load -----------------------------------------------------------------------------


def load_policies(preset, year, region_code=None, user=None, approve=False):
    """Load a preset (`huzhou`, `panzhihua`, `kaifeng`, `defaults`) for a year; returns its report lines."""
    if preset not in PRESETS:
        raise Refused(f"没有“{preset}”的政策预设，可选：{'、'.join(PRESETS)}")
    year = check_year(year)
    region = check_region(region_code)
    try:
        return load_preset(preset, year, region, user=user, approve=approve)
    except PresetError as exc:
        raise Refused(str(exc)) from None


# --- policy set ------------------------------------------------------------------------------


def _fields(params_class):
    return {f.name: f for f in dataclasses.fields(params_class)}


def text_value(hint, text):
    """A command-line word as the JSON value `from_json` expects for `hint`; from_json then validates it.

    Numbers stay strings (from_json reads Decimal and int from strings, never via float); what does
    not fit is passed on unchanged so that from_json names the parameter in its refusal.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.strip() == "" and type(None) in args:
            return None
        inner = [arg for arg in args if arg is not type(None)]
        return text_value(inner[0], text) if len(inner) == 1 else text
    if hint is bool:
        word = text.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        return text
    if origin in (tuple, list, frozenset):
        for separator in LIST_SEPARATORS:
            text = text.replace(separator, ",")
        return [item.strip() for item in text.split(",") if item.strip()]
    if origin is dict:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text.strip() if hint in (Decimal, int, datetime.date) else text


def parse_assignments(params_class, assignments):
    """{name: JSON value} from NAME=VALUE words; an unknown name is refused with the valid ones."""
    fields = _fields(params_class)
    hints = typing.get_type_hints(params_class)
    if not assignments:
        example = next(iter(fields), "NAME")
        raise Refused(f"请至少给出一个参数，写成 NAME=VALUE，如 {example}=…")
    values = {}
    for word in assignments:
        name, sep, text = word.partition("=")
        name = name.strip()
        if not sep or not name:
            raise Refused(f"参数应写成 NAME=VALUE，收到“{word}”")
        if name not in fields:
            valid = "、".join(f"{n}（{field_label(f)}）" for n, f in fields.items())
            raise Refused(f"未知参数“{name}”，可用参数：{valid}")
        if name in values:
            raise Refused(f"参数“{field_label(fields[name])}”（{name}）给出了不止一次")
        values[name] = text_value(hints.get(name, typing.Any), text)
    return values


def updated_parameters(params_class, stored, changes):
    """`stored` with `changes` ({name: JSON value}) applied, the whole set validated (bounds, choices,
    types, the scheme's own combination checks); Refused, with every problem, when it does not validate.

    Only the changed keys take their normalised form; the others stay as they were stored. The one
    step behind `policy set` and the admin's policy form, so both write the same JSON.
    """
    data = dict(stored or {})
    data.update(changes)
    try:
        typed = from_json(params_class, data)
    except ValidationError as exc:
        raise Refused("；".join(exc.messages)) from None
    normalised = to_json(typed)
    data.update({name: normalised[name] for name in changes})
    return data


def set_parameters(scheme, year, region_code, assignments, user=None, reason=None):
    """Set named parameters of the (scheme, year, region) policy; returns the saved policy.

    A missing policy is created as a draft from the scheme's defaults. The whole parameter set is
    validated (bounds, choices, types, the scheme's own combination checks) before anything is
    saved; an approved policy is immutable and refused. The history row carries `reason`.
    """
    params_class = check_scheme(scheme, settling=False).params_class
    year = check_year(year)
    region = check_region(region_code)
    changes = parse_assignments(params_class, assignments)
    with transaction.atomic():
        # Ordered by key: the model's default ordering joins the (nullable) region, which FOR UPDATE refuses.
        policy = (PaymentPolicy.objects.select_for_update().filter(scheme=scheme, year=year, region=region)
                  .order_by("pk").first())
        if policy is None:
            policy = PaymentPolicy(scheme=scheme, year=year, region=region, name="参数设置",
                                   parameters=defaults_of(params_class))
        elif policy.locked_reason():
            # Refused before validating: on an approved policy the lock is the one thing to say.
            raise Refused(policy.locked_reason())
        if user is not None:
            refusal = write_refusal(policy, user)
            if refusal:
                raise Refused(refusal)
        policy.parameters = updated_parameters(params_class, policy.parameters, changes)
        policy._change_reason = _clip(reason or f"设置参数 {' '.join(assignments)}")
        if user is not None and user.pk:
            policy._history_user = user
        try:
            policy.save()
        except LockedError as exc:  # the model's own guard, should a path above have missed it
            raise Refused(str(exc)) from None
    return policy


def _clip(text):
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


# --- policy show -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParameterRow:
    name: str
    label: str
    value: str  # as `policy set` would take it back
    source: str  # SOURCE_PRESET, SOURCE_DEFAULT or SOURCE_SET
    preset: str = ""  # the preset's Chinese name (预设 and 默认 rows of a loaded preset)
    changed_by: str = ""  # 设置 rows: the user the history names, if any
    changed_at: datetime.datetime | None = None
    reason: str = ""

    @property
    def source_text(self):
        if self.source == SOURCE_PRESET:
            return f"{SOURCE_PRESET}（{self.preset}）"
        if self.source == SOURCE_DEFAULT:
            return SOURCE_DEFAULT
        details = [self.changed_by] if self.changed_by else []
        if self.changed_at is not None:
            details.append(timezone.localtime(self.changed_at).strftime("%Y-%m-%d %H:%M"))
        if self.reason:
            details.append(self.reason)
        if not details:
            details.append("无修改记录")
        return f"{SOURCE_SET}（{'，'.join(details)}）"


def display_value(value):
    """A JSON parameter value written the way `policy set` reads it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(display_value(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _typed_values(params_class, raw):
    """name → typed value of a stored parameters JSON (defaults for missing keys), for comparing.

    Typed, so that "0.8" and "0.80" are the same value. A stored set that does not validate as a
    whole (an old history row) is read field by field, keeping the raw value where even that fails.
    """
    fields = _fields(params_class)
    raw = {k: v for k, v in raw.items() if k in fields} if isinstance(raw, dict) else {}
    try:
        typed = from_json(params_class, raw)
        return {name: getattr(typed, name) for name in fields}
    except ValidationError:
        pass
    defaults = from_json(params_class, defaults_of(params_class))
    out = {}
    for name in fields:
        if name not in raw:
            out[name] = getattr(defaults, name)
            continue
        try:
            out[name] = getattr(from_json(params_class, {name: raw[name]}), name)
        except ValidationError:
            out[name] = raw[name]
    return out


def _preset_of(policy, records):
    """(preset key or None, index in `records` of the load that set the baseline, or None).

    The latest history row whose reason names a preset load wins; a policy loaded before those
    reasons were written is recognised by the name load_preset gives it.
    """
    for index in range(len(records) - 1, -1, -1):
        reason = records[index].history_change_reason or ""
        if reason.startswith(PRESET_REASON_PREFIX) and reason.endswith("预设"):
            key = CITY_BY_LABEL.get(reason[len(PRESET_REASON_PREFIX):-len("预设")])
            if key is not None:
                return key, index
    for key, preset in PRESETS.items():
        if policy.name == f"{preset['label']}预设":
            return key, None
    return None, None


def describe(policy):
    """Every parameter of the policy's scheme, in schema order, with its value and provenance."""
    params_class = get_rule(policy.scheme).params_class
    fields = _fields(params_class)
    records = list(policy.history.select_related("history_user").order_by("history_date", "history_id"))
    preset_key, start = _preset_of(policy, records)
    preset = PRESETS.get(preset_key) if preset_key else None
    overrides = {k: v for k, v in (preset["policies"].get(policy.scheme, {}) if preset else {}).items() if k in fields}
    baseline = _typed_values(params_class, {**defaults_of(params_class), **overrides})
    current = _typed_values(params_class, policy.parameters)

    # The history row that last changed each parameter, walking forward from the preset's load
    # (or from the policy's creation, measured against the defaults).
    last_change, previous = {}, baseline
    for record in records[start or 0:]:
        values = _typed_values(params_class, record.parameters)
        for name in fields:
            if values[name] != previous[name]:
                last_change[name] = record
        previous = values

    rows = []
    for name, field in fields.items():
        value = display_value(to_json_safe(current[name]))
        common = {"name": name, "label": field_label(field), "value": value}
        if current[name] == baseline[name]:
            source = SOURCE_PRESET if name in overrides else SOURCE_DEFAULT
            rows.append(ParameterRow(**common, source=source, preset=preset["label"] if preset else ""))
            continue
        record = last_change.get(name)
        if record is None:
            rows.append(ParameterRow(**common, source=SOURCE_SET))
            continue
        who = record.history_user.get_username() if record.history_user_id else ""
        rows.append(ParameterRow(**common, source=SOURCE_SET, changed_by=who, changed_at=record.history_date,
                                 reason=record.history_change_reason or ""))
    return rows


# --- approve ---------------------------------------------------------------------------------


def check_approvable(kind):
    """Refuse what `approve` cannot approve, before anything else is looked up."""
    if kind not in APPROVABLE:
        raise Refused(f"未知的审批对象“{kind}”，可选：{'、'.join(APPROVABLE)}")
    return APPROVABLE[kind]


def approve_year(kind, year, region_code, user):
    """Approve, as `user` (the city bureau), every draft of `kind` for the year; returns the count.

    Policies are those of the year and region (none = city-wide), each validated by approve_policy,
    all or none; standards are city-wide, so a region is refused for them.
    """
    check_approvable(kind)
    year = check_year(year)
    region = check_region(region_code)
    what = f"审批{APPROVABLE[kind]}"
    require_approver(user, what)
    if kind == "policies":
        with transaction.atomic():
            drafts = PaymentPolicy.objects.filter(year=year, region=region, status=ApprovalStatus.DRAFT)
            count = 0
            for policy in drafts.order_by("scheme"):
                approve_policy(policy, user)
                count += 1
        return count
    if region is not None:
        raise Refused(f"{APPROVABLE[kind]}为全市统一标准，不按县区审批，请去掉 --region")
    if kind == "capitation_standards":
        return approve_capitation_standards(CapitationStandard.objects.filter(year=year), user)
    if kind == "benefit_rules":
        return approve_benefit_rules(year, user)
    return approve_drafts(SpecialStandard.objects.filter(year=year), user, draft=ApprovalStatus.DRAFT,
                          approved=ApprovalStatus.APPROVED, what=what)
