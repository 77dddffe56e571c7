"""The side-by-side table of a simulation (SPEC §5 `simulate`): one row per unit with 单位编码, 单位名称,
then each of Q, A, E, 年终清算金额 as 基准 / 模拟 / 差额 columns; xlsx or csv.

The page's export adds S and the unit's part after those (the figures the result page shows).
"""
import io

from .export import export_format, safe_text, write_money_csv, write_money_xlsx
from .simulation import visible_units

KINDS = ("基准", "模拟", "差额")
FIGURES = [("Q", "quota"), ("A", "actual"), ("E", "entitled"), ("年终清算金额", "amount")]
EXTRA_FIGURES = [("S", "surplus"), ("单位分担留用", "unit_part")]


def headers(extended=False):
    figures = FIGURES + (EXTRA_FIGURES if extended else [])
    return ["单位编码", "单位名称"] + [f"{label}{kind}" for label, _ in figures for kind in KINDS]


def rows_of(simulation, user=None, extended=False):
    figures = FIGURES + (EXTRA_FIGURES if extended else [])
    for unit in visible_units(simulation, user):
        row = [safe_text(unit.unit_code), safe_text(unit.unit_name)]
        for _, field in figures:
            row += [getattr(unit, f"base_{field}"), getattr(unit, field), unit.difference(field)]
        yield row


def write_csv(simulation, stream, user=None, extended=False):
    return write_money_csv(stream, headers(extended), rows_of(simulation, user, extended))


def write_xlsx(simulation, stream, user=None, extended=False):
    return write_money_xlsx(stream, "政策模拟", headers(extended), rows_of(simulation, user, extended),
                            number_format="#,##0.00")


def export_simulation(simulation, path, user=None):
    """Write the side-by-side table to `path` (.xlsx or .csv); returns the number of unit rows."""
    fmt = export_format(path)
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8-sig") as stream:
            return write_csv(simulation, stream, user)
    with open(path, "wb") as stream:
        return write_xlsx(simulation, stream, user)


def simulation_bytes(simulation, fmt="xlsx", user=None, extended=True):
    if fmt == "csv":
        text = io.StringIO()
        write_csv(simulation, text, user, extended)
        return ("\ufeff" + text.getvalue()).encode("utf-8")
    buffer = io.BytesIO()
    write_xlsx(simulation, buffer, user, extended)
    return buffer.getvalue()
