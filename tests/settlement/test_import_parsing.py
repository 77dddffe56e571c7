"""The generated row parser (the hot loop) must read every cell exactly as the plain reference loop
does: same values, same errors in the same order, same memo behaviour, for every resource."""
import datetime
from decimal import Decimal

from settlement.imports import validation
from settlement.imports.resources import RESOURCES

# Cells of every kind a csv or xlsx hands over: good text, blanks, whitespace, numbers that lost
# digits, bools, dates with and without time, negative and over-precise amounts, garbage.
SAMPLES = [
    "", " ", None, "是", "否", "maybe", "2024-01-31", "2024-13-01", "45292", 45292.0, 45292, 1.0, 0, True, False,
    datetime.date(2024, 1, 31), datetime.datetime(2024, 1, 31), datetime.datetime(2024, 1, 31, 8, 30),
    "12.50", "-1", "0.404", "1,234.50", 330502197005170032.0, "330502197005170032", "3.30502E+17",
    "H33050200001", "h33050200001", "普通门诊", "I10", "x" * 120, "  MZ01 ",
]


def plans(resource):
    """The resource's columns in file order, and once with the file missing every optional column."""
    full = [(column, index) for index, column in enumerate(resource.columns)]
    trimmed, index = [], 0
    for column in resource.columns:
        if column.required:
            trimmed.append((column, index))
            index += 1
        else:
            trimmed.append((column, None))
    return full, trimmed


def fresh_plan(bound):
    caches = {column.name: {} for column, _ in bound if column.cache}
    return validation._plan(bound, caches)


def rows_for(width):
    for start in range(len(SAMPLES)):
        yield [SAMPLES[(start + k * 7) % len(SAMPLES)] for k in range(width)]
    yield []  # a short row: every cell missing
    yield ["x"]


def test_generated_parser_matches_the_reference_for_every_resource():
    compared = 0
    for resource in RESOURCES.values():
        for bound in plans(resource):
            reference_plan = fresh_plan(bound)
            generated = validation.compile_row_parser(fresh_plan(bound))
            width = len(resource.columns)
            # Twice through: the second pass answers from the memo caches on both sides.
            for _ in range(2):
                for number, cells in enumerate(rows_for(width), start=2):
                    assert generated(number, list(cells)) == validation._parse_row(number, cells, reference_plan), (
                        resource.name, cells,
                    )
                    compared += 1
    assert compared > 0


def test_generated_parser_reads_a_good_and_a_bad_claim():
    resource = RESOURCES["outpatient_claims"]
    bound = [(column, index) for index, column in enumerate(resource.columns)]
    parse = validation.compile_row_parser(fresh_plan(bound))
    row, problems = parse(2, ["MZ1", "330502197005170032", "H33050200001", "2024-01-31", "普通门诊", "", "12.50",
                              "7.50", "5.00", "否"])
    assert problems is None
    assert row == {
        "serial": "MZ1", "person": "330502197005170032", "institution": "H33050200001",
        "visit_date": datetime.date(2024, 1, 31), "visit_type": "普通门诊", "disease": None,
        "total_cost": Decimal("12.50"), "fund_paid": Decimal("7.50"), "personal_paid": Decimal("5.00"), "referral": False,
        "in_scope_cost": None,  # the optional 政策范围内费用 (SPEC §6.8), past the end of this row
    }
    # Blank required serial, an ID typed as a number, a blank optional disease (no error), 3 decimals.
    row, problems = parse(3, ["", 330502197005170032.0, "H33050200001", "2024-01-31", "普通门诊", " ", "12.505",
                              "7.50", "5.00", ""])
    assert [(p.row, p.column) for p in problems] == [(3, "结算流水号"), (3, "身份证号"), (3, "总费用")]
    assert problems[2].reason == "金额最多2位小数"
    assert row["disease"] is None and row["referral"] is None
