"""Policy parameters: a scheme's frozen `params_class` ↔ the JSON the bureau edits.

Decimal values are stored as strings (never float). A field may carry metadata
`{"label": "中文名", "min": Decimal, "max": Decimal, "choices": (...)}`; without it only the type is
checked. Every problem is reported in Chinese, all at once, as a ValidationError.
"""
import dataclasses
import datetime
import types
import typing
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from .codec import to_json_safe


def field_label(field):
    return field.metadata.get("label") or field.name


def defaults_of(params_class):
    """The JSON of the params_class defaults (fields without a default are left out)."""
    out = {}
    for field in dataclasses.fields(params_class):
        if field.default is not dataclasses.MISSING:
            out[field.name] = to_json_safe(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = to_json_safe(field.default_factory())
    return out


def to_json(params):
    return {f.name: to_json_safe(getattr(params, f.name)) for f in dataclasses.fields(params)}


def from_json(params_class, data):
    """Build `params_class` from stored JSON, or raise ValidationError listing every bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError("政策参数应为JSON对象（键值对）")
    fields = {f.name: f for f in dataclasses.fields(params_class)}
    hints = typing.get_type_hints(params_class)
    errors = []
    unknown = sorted(set(data) - set(fields))
    if unknown:
        errors.append(f"未知参数：{'、'.join(unknown)}（可用参数：{'、'.join(fields)}）")
    values = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                errors.append(f"缺少参数“{field_label(field)}”（{name}）")
            continue
        try:
            values[name] = _convert(hints.get(name, typing.Any), data[name], field)
        except ValueError as exc:
            errors.append(f"参数“{field_label(field)}”（{name}）{exc}")
    if errors:
        raise ValidationError(errors)
    try:
        return params_class(**values)
    except (ValueError, TypeError) as exc:  # a params_class may check combinations in __post_init__
        raise ValidationError(f"政策参数不合理：{exc}") from None


def parameter_value(field, hint, raw):
    """One parameter's typed value from its JSON form (bounds and choices checked), or ValueError whose
    message says in Chinese what is wrong, without naming the parameter (the caller's field does)."""
    return _convert(hint, raw, field)


def choice_label(field, choice):
    """The Chinese label the schema gives a choice (`choice_labels`), else the choice itself."""
    return field.metadata.get("choice_labels", {}).get(choice, choice)


def _convert(hint, raw, field):
    value = _coerce(hint, raw)
    meta = field.metadata
    low, high = meta.get("min"), meta.get("max")
    if low is not None and value < low:
        raise ValueError(f"不能小于{low}，当前为{raw}")
    if high is not None and value > high:
        raise ValueError(f"不能大于{high}，当前为{raw}")
    choices = meta.get("choices")
    if choices is not None:
        chosen = value if isinstance(value, tuple) else (value,)
        bad = [v for v in chosen if v not in choices]
        if bad:
            raise ValueError(f"取值“{'、'.join(map(str, bad))}”无效，可选：{'、'.join(map(str, choices))}")
    return value


def _coerce(hint, raw):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return raw
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        last = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, raw)
            except ValueError as exc:
                last = exc
        raise last or ValueError("取值无效")
    if origin is typing.Literal:
        if raw not in args:
            raise ValueError(f"取值“{raw}”无效，可选：{'、'.join(map(str, args))}")
        return raw
    if hint is Decimal:
        if isinstance(raw, bool) or isinstance(raw, float):
            # Floats lose 分; the bureau's figures are kept as strings.
            raise ValueError(f"应写成字符串形式的数字（如\"0.85\"），不能是{raw!r}")
        try:
            value = Decimal(str(raw).strip())
        except (InvalidOperation, ValueError):
            raise ValueError(f"应为数字，当前为“{raw}”") from None
        if not value.is_finite():
            raise ValueError(f"应为有限数字，当前为“{raw}”")
        return value
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        raise ValueError(f"应为 true 或 false，当前为“{raw}”")
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise ValueError(f"应为整数，当前为“{raw}”")
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"应为整数，当前为“{raw}”") from None
    if hint is str:
        if not isinstance(raw, str):
            raise ValueError(f"应为文字，当前为“{raw}”")
        return raw
    if hint is datetime.date:
        try:
            return datetime.date.fromisoformat(str(raw))
        except ValueError:
            raise ValueError(f"应为日期（YYYY-MM-DD），当前为“{raw}”") from None
    if origin in (tuple, list, frozenset):
        if not isinstance(raw, (list, tuple)):
            raise ValueError(f"应为列表，当前为“{raw}”")
        item_hint = args[0] if args else typing.Any
        items = tuple(_coerce(item_hint, item) for item in raw)
        return frozenset(items) if origin is frozenset else (list(items) if origin is list else items)
    if origin is dict:
        if not isinstance(raw, dict):
            raise ValueError(f"应为键值对，当前为“{raw}”")
        key_hint, value_hint = args if args else (typing.Any, typing.Any)
        return {_coerce(key_hint, k): _coerce(value_hint, v) for k, v in raw.items()}
    return raw
