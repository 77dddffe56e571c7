"""Small SQL helpers shared by the schemes' set-based gathers (PostgreSQL).

Month arithmetic of SPEC §6.1: a period [start, end] counts for month m of the settlement year when
start ≤ last day of m and (no end or end ≥ last day of m). With month numbers relative to the year
(January = 1), that is m from `month_no(start)` to `month_no(end + 1 day) − 1`, so a period becomes a
range of month numbers and overlaps are plain GREATEST/LEAST arithmetic — no row per month.
"""
import contextlib
import re
import uuid
from decimal import Decimal

from django.db import connection, transaction

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


def roomy(cursor):
    """Settings for the rest of the transaction, for statements over a year of claims or cases: hash them
    in memory (the default 4 MB spills to disk); skip JIT compilation, which costs more than it saves on
    a one-pass statement; and no merge joins, because the planner otherwise merges small lists of ids
    against a primary-key index and reads the whole table in key order, several times slower than the
    parallel sequential scan with hash joins."""
    cursor.execute("SET LOCAL work_mem = '128MB'")
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL enable_mergejoin = off")


@contextlib.contextmanager
def year_scale():
    """A transaction with the `roomy` settings, for a gather's statements over a year of claims. Without
    it, an ORM statement whose estimate passes jit_above_cost is JIT-compiled first: 2.5 s of the city's
    special-disease head count went to compiling a statement that then ran in 1 s."""
    with transaction.atomic(), connection.cursor() as cursor:
        roomy(cursor)
        yield


@contextlib.contextmanager
def scratch_table(prefix, select_sql, params):
    """The rows of `select_sql` as an unlogged table for the several statements of one gather, so that
    they are worked out once; yields the table's name. Must run inside a transaction: the table lives
    and dies in it (a rollback takes it away, a normal end drops it). Parallel workers can read it,
    unlike a temporary table, and it is analysed so the planner knows its size."""
    if not connection.in_atomic_block:
        raise RuntimeError("scratch_table needs a transaction")
    table = f"{prefix}_{connection.connection.info.backend_pid}_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE UNLOGGED TABLE {table} AS {select_sql}", params)
        # The planner needs the row count and a rough spread, not fine histograms.
        cursor.execute("SET LOCAL default_statistics_target = 10")
        cursor.execute(f"ANALYZE {table}")
    yield table
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {table}")
