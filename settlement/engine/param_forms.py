"""Form fields generated from a scheme's parameter schema (the `params_class` metadata of params.py):
the Chinese label, the bounds as help text, choices with their Chinese labels. The simulation form and
the draft policy form build their fields here; what a field holds is turned into the JSON form a
command-line word takes (`policy_services.text_value`) and checked by params.parameter_value/from_json,
so every door reads and refuses a value alike.
"""
import typing
from decimal import Decimal

from django import forms

from .params import choice_label, field_label

LIST_JOIN = "、"


def bounds_text(meta):
    parts = []
    if meta.get("min") is not None:
        parts.append(f"不小于{meta['min']}")
    if meta.get("max") is not None:
        parts.append(f"不大于{meta['max']}")
    return "，".join(parts)


def _is_list(hint):
    return typing.get_origin(hint) in (tuple, list, frozenset)


def initial_text(value):
    """A stored value as a text box shows it: a list joined by 、, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return LIST_JOIN.join(map(str, value))
    return str(value)


def parameter_field(field, hint, initial, label=None):
    """The form field of one parameter: a check box, a choice (several for a list with choices), or a
    text box for numbers, dates and free lists, with the bounds as help text."""
    meta = field.metadata
    label = label or field_label(field)
    help_text = bounds_text(meta)
    choices = meta.get("choices")
    if hint is bool:
        return forms.BooleanField(label=label, required=False, initial=bool(initial))
    if choices:
        options = [(c, choice_label(field, c)) for c in choices]
        if _is_list(hint):
            return forms.MultipleChoiceField(label=label, choices=options, initial=list(initial or []),
                                             widget=forms.CheckboxSelectMultiple, required=False)
        return forms.ChoiceField(label=label, choices=options, initial=initial)
    attrs = {"size": 12}
    if hint in (Decimal, int):
        attrs["inputmode"] = "decimal" if hint is Decimal else "numeric"
        help_text = "，".join(filter(None, ["整数" if hint is int else "数字", help_text]))
    elif _is_list(hint):
        attrs["size"] = 40
        help_text = "多项用顿号或逗号分隔"
    for bound in ("min", "max"):
        if meta.get(bound) is not None:
            attrs[f"data-{bound}"] = str(meta[bound])
    return forms.CharField(label=label, initial=initial_text(initial), help_text=help_text, required=False,
                           widget=forms.TextInput(attrs=attrs))
