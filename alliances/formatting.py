"""How figures are shown to people: one helper behind every page, template and admin column.

Money gets thousands separators, two places and a real minus sign (U+2212 "−"), as a printed
statement would: 77,626.75 and −43,065.05. Exports do not come here: SPEC §5 files keep plain
numbers that a spreadsheet reads back.
"""
from decimal import Decimal, InvalidOperation

from django.utils.html import format_html

MINUS = "\u2212"
EMPTY = "—"


def _decimal(value):
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip().replace(MINUS, "-").replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _signed(number, spec):
    text = format(abs(number), spec)
    return f"{MINUS}{text}" if number < 0 and text.strip("0.,") else text


def money(value):
    """Yuan with 分: "1,234.50", "−43,065.05"; "—" for no value; text that is no number as it is."""
    number = _decimal(value)
    if number is None:
        return EMPTY if value in (None, "") else str(value)
    return _signed(number, ",.2f")


def figure(value):
    """A count, ratio or point value as stored (its own decimal places), grouped and with a real minus."""
    number = _decimal(value)
    if number is None:
        return EMPTY if value in (None, "") else str(value)
    return _signed(number, ",f")


def money_column(field, description, *, order=True):
    """An admin column / read-only field showing `field` as money, right-aligned and unbroken.

    Usable in list_display, readonly_fields and inlines alike: as a class attribute it is called
    with (admin, obj), as a plain callable with (obj).
    """

    def show(*args):
        return format_html('<span class="money">{}</span>', money(getattr(args[-1], field)))

    show.short_description = description
    if order:
        show.admin_order_field = field
    show.__name__ = f"{field}_money"
    return show
