"""Small SQL helpers shared by the schemes' set-based gathers (PostgreSQL).

Month arithmetic of SPEC §6.1: a period [start, end] counts for month m of the settlement year when
start ≤ last day of m and (no end or end ≥ last day of m). With month numbers relative to the year
(January = 1), that is m from `month_no(start)` to `month_no(end + 1 day) − 1`, so a period becomes a
range of month numbers and overlaps are plain GREATEST/LEAST arithmetic — no row per month.
"""
import re
from decimal import Decimal

from django.db import connection

_NAMED = re.compile(r"%\((\w+)\)s")


def positional(sql, named):
    """Rewrite %(name)s placeholders as %s with a matching list (RawSQL accepts it)."""
    params = []

    def take(match):
        params.append(named[match.group(1)])
        return "%s"

    return _NAMED.sub(take, sql), params


def month_no(expr, year):
    """Month number of a date relative to January of `year` (Jan = 1, Dec of the year before = 0),
    clamped to 0 … 13 (any earlier date is 0, any later one 13)."""
    # A binary search over the year's thirteen month starts (0 before January, 13 from the next
    # January on): about twice as fast as date_part arithmetic over half a million contracts.
    # Clamping to 0…13 changes no result: every caller clamps to the year's months 1…12 anyway.
    return f"width_bucket({expr}, {_month_starts(year)})"


def _month_starts(year):
    year = int(year)
    days = [f"{year:04d}-{month:02d}-01" for month in range(1, 13)] + [f"{year + 1:04d}-01-01"]
    return "ARRAY[" + ", ".join(f"'{day}'" for day in days) + "]::date[]"


def first_month(expr, year):
    """First counted month of a period starting on `expr`."""
    return month_no(expr, year)


def last_month(expr, year):
    """Last counted month of a period ending on `expr` (NULL = open-ended → December)."""
    return f"COALESCE({month_no(f'({expr} + 1)', year)} - 1, 12)"


def month_start(month_expr, year):
    """First day of month number `month_expr` (relative to January of `year`: 1 … 12, or 13 for the next
    January) as a date."""
    # A subscript of the year's month starts: cheaper than make_date arithmetic, which the
    # segment tables evaluate for every contract.
    return f"({_month_starts(year)})[{month_expr}]"


def greatest(*exprs):
    return f"GREATEST({', '.join(exprs)})"


def least(*exprs):
    return f"LEAST({', '.join(exprs)})"


def sum_money(expr):
    """An exact money sum (numeric), 0 for no rows."""
    return f"COALESCE(SUM({expr}), 0)"


def money_value(raw):
    """Decimal yuan from a `sum_money` column."""
    if raw is None:
        return Decimal("0.00")
    return Decimal(raw).quantize(Decimal("0.01"))


def fetch(sql, named):
    query, params = positional(sql, named)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def in_list(name, values, named):
    """Placeholders for `IN (...)`, registering each value in `named`."""
    keys = []
    for index, value in enumerate(values):
        key = f"{name}_{index}"
        named[key] = value
        keys.append(f"%({key})s")
    return ", ".join(keys) or "NULL"
