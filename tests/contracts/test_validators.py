"""GB 11643 resident IDs: the check digit, the birth date and sex read from the number, ages."""
import datetime

import pytest
from django.core.exceptions import ValidationError

from contracts.validators import age_on, build_resident_id, parse_resident_id, validate_resident_id

# Worked by hand (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, sum mod 11 indexes "10X98765432"):
#
# 110105 19491231 002 →
#   1·7 + 1·9 + 0·10 + 1·5 + 0·8 + 5·4 + 1·2 + 9·1 + 4·6 + 9·3 + 1·7 + 2·9 + 3·10 + 1·5 + 0·8 + 0·4 + 2·2
#   = 7 + 9 + 0 + 5 + 0 + 20 + 2 + 9 + 24 + 27 + 7 + 18 + 30 + 5 + 0 + 0 + 4 = 167; 167 mod 11 = 2 → "X"
ID_X_FEMALE_1949 = "11010519491231002X"
# 330502 19800229 001 →
#   3·7 + 3·9 + 0·10 + 5·5 + 0·8 + 2·4 + 1·2 + 9·1 + 8·6 + 0·3 + 0·7 + 2·9 + 2·10 + 9·5 + 0·8 + 0·4 + 1·2
#   = 21 + 27 + 0 + 25 + 0 + 8 + 2 + 9 + 48 + 0 + 0 + 18 + 20 + 45 + 0 + 0 + 2 = 225; 225 mod 11 = 5 → "7"
ID_LEAP_MALE_1980 = "330502198002290017"
# 320102 20000101 002 →
#   3·7 + 2·9 + 0·10 + 1·5 + 0·8 + 2·4 + 2·2 + 0·1 + 0·6 + 0·3 + 0·7 + 1·9 + 0·10 + 1·5 + 0·8 + 0·4 + 2·2
#   = 21 + 18 + 0 + 5 + 0 + 8 + 4 + 0 + 0 + 0 + 0 + 9 + 0 + 5 + 0 + 0 + 4 = 74; 74 mod 11 = 8 → "4"
ID_FEMALE_2000 = "320102200001010024"

TODAY = datetime.date(2026, 6, 1)


def _with_check_digit(first17):
    """An independent check-digit computation, used only to build numbers that are wrong elsewhere."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


def _error(value, today=TODAY):
    with pytest.raises(ValidationError) as info:
        parse_resident_id(value, today=today)
    return info.value.messages


@pytest.mark.parametrize(
    "number, birth, sex",
    [
        (ID_X_FEMALE_1949, datetime.date(1949, 12, 31), "F"),  # 17th digit 2: even → female
        (ID_LEAP_MALE_1980, datetime.date(1980, 2, 29), "M"),  # 17th digit 1: odd → male
        (ID_FEMALE_2000, datetime.date(2000, 1, 1), "F"),
    ],
)
def test_valid_ids_give_birth_date_and_sex(number, birth, sex):
    parsed = parse_resident_id(number, today=TODAY)
    assert parsed.number == number
    assert parsed.birth_date == birth
    assert parsed.sex == sex


def test_independent_helper_agrees_with_the_hand_worked_numbers():
    # Guards the helper used below for the "wrong elsewhere" cases.
    assert _with_check_digit("11010519491231002") == ID_X_FEMALE_1949
    assert _with_check_digit("33050219800229001") == ID_LEAP_MALE_1980
    assert _with_check_digit("32010220000101002") == ID_FEMALE_2000


def test_lowercase_x_is_accepted_and_normalised():
    parsed = parse_resident_id("11010519491231002x", today=TODAY)
    assert parsed.number == "11010519491231002X"


def test_surrounding_spaces_are_ignored():
    assert parse_resident_id(f"  {ID_FEMALE_2000} ", today=TODAY).number == ID_FEMALE_2000


def test_wrong_check_digit():
    # The right one is 7 (see above).
    assert _error("330502198002290018") == ["身份证号校验位错误，请核对号码"]
    assert _error("110105194912310020") == ["身份证号校验位错误，请核对号码"]


def test_impossible_birth_date():
    number = _with_check_digit("33050219990230001")  # 30 February
    assert _error(number) == ["身份证号中的出生日期“19990230”不是有效日期"]
    number = _with_check_digit("33050219991301001")  # month 13
    assert _error(number) == ["身份证号中的出生日期“19991301”不是有效日期"]
    number = _with_check_digit("33050219990229001")  # 1999 is not a leap year
    assert _error(number) == ["身份证号中的出生日期“19990229”不是有效日期"]


def test_future_birth_date():
    number = _with_check_digit("33050220260602001")  # the day after TODAY
    assert _error(number) == ["身份证号中的出生日期“2026-06-02”不合理"]
    # Born today is possible (a newborn is insured from birth).
    assert parse_resident_id(_with_check_digit("33050220260601001"), today=TODAY).birth_date == TODAY


def test_birth_before_1900_is_not_plausible():
    number = _with_check_digit("33050218991231001")
    assert _error(number) == ["身份证号中的出生日期“1899-12-31”不合理"]


def test_validator_uses_the_real_today_for_the_future_check():
    with pytest.raises(ValidationError) as info:
        validate_resident_id(_with_check_digit("33050220990101001"))
    assert info.value.messages == ["身份证号中的出生日期“2099-01-01”不合理"]


@pytest.mark.parametrize(
    "value, length",
    [("33050219800229001", 17), ("3305021980022900171", 19), ("", 0), ("3.30522200008012e+17", 20)],
)
def test_wrong_length(value, length):
    assert _error(value) == [f"身份证号应为18位，实际为{length}位"]


def test_none_is_refused():
    assert _error(None) == ["身份证号不能为空"]


@pytest.mark.parametrize(
    "value", ["3305021980A2290017", "33050219800229X017", "33050219800229001A", "33050219800229 017"],
)
def test_letters_inside(value):
    assert _error(value) == ["身份证号格式错误：前17位应为数字，末位为数字或X"]


@pytest.mark.parametrize("province", ["00", "99", "10", "39", "72"])
def test_bad_province_code(province):
    number = _with_check_digit(f"{province}050219800229001")
    assert _error(number) == [f"身份证号前两位“{province}”不是有效的省级行政区划代码"]


def test_build_resident_id_makes_valid_numbers_of_the_requested_sex():
    number = build_resident_id("330502", datetime.date(1980, 2, 29), 0, "M")
    assert number == ID_LEAP_MALE_1980  # sequence 0, male → order 001
    female = build_resident_id("330502", datetime.date(1980, 2, 29), 0, "F")
    assert female[:17] == "33050219800229000"
    assert parse_resident_id(female, today=TODAY).sex == "F"
    with pytest.raises(ValueError):
        build_resident_id("330502", datetime.date(1980, 2, 29), 500, "M")


@pytest.mark.parametrize(
    "birth, day, age",
    [
        (datetime.date(1966, 1, 1), datetime.date(2026, 1, 1), 60),  # the birthday itself
        (datetime.date(1966, 1, 1), datetime.date(2025, 12, 31), 59),  # the day before
        (datetime.date(1965, 1, 2), datetime.date(2026, 1, 1), 60),  # 61 only tomorrow
        (datetime.date(1980, 2, 29), datetime.date(2020, 2, 28), 39),
        (datetime.date(1980, 2, 29), datetime.date(2020, 2, 29), 40),  # leap-year birthday
        (datetime.date(1980, 2, 29), datetime.date(2021, 2, 28), 40),  # no 29 Feb: still 40 …
        (datetime.date(1980, 2, 29), datetime.date(2021, 3, 1), 41),  # … 41 on 1 March
        (datetime.date(2000, 1, 1), datetime.date(2000, 1, 1), 0),
    ],
)
def test_age_on(birth, day, age):
    assert age_on(birth, day) == age
