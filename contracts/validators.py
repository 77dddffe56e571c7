"""Validation of identifiers where the data is born (GB 11643 resident IDs)."""
import datetime
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from alliances.validators import PROVINCE_CODES

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_ID_PATTERN = re.compile(r"^\d{17}[\dX]$")


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: datetime.date
    sex: str  # "M" or "F"


def id_check_char(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS))
    return _CHECK_CHARS[total % 11]


def parse_resident_id(value, today=None) -> ResidentId:
    """Return the parsed ID or raise ValidationError with a Chinese reason."""
    if value is None:
        raise ValidationError("身份证号不能为空")
    number = str(value).strip().upper()
    if len(number) != 18:
        raise ValidationError(f"身份证号应为18位，实际为{len(number)}位")
    if not _ID_PATTERN.match(number):
        raise ValidationError("身份证号格式错误：前17位应为数字，末位为数字或X")
    if int(number[:2]) not in PROVINCE_CODES:
        raise ValidationError(f"身份证号前两位“{number[:2]}”不是有效的省级行政区划代码")
    try:
        birth = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValidationError(f"身份证号中的出生日期“{number[6:14]}”不是有效日期") from None
    today = today or datetime.date.today()
    if birth > today or birth.year < 1900:
        raise ValidationError(f"身份证号中的出生日期“{birth:%Y-%m-%d}”不合理")
    expected = id_check_char(number[:17])
    if number[17] != expected:
        raise ValidationError("身份证号校验位错误，请核对号码")
    return ResidentId(number=number, birth_date=birth, sex="M" if int(number[16]) % 2 else "F")


def validate_resident_id(value):
    parse_resident_id(value)


def age_on(birth_date: datetime.date, day: datetime.date) -> int:
    """Age in full years on `day` (a person born on 29 Feb turns a year older on 1 Mar)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def build_resident_id(division_code: str, birth_date: datetime.date, sequence: int, sex: str) -> str:
    """A valid 18-character ID for test and demo data: `sequence` 0–499, sex "M" or "F"."""
    if not 0 <= sequence < 500:
        raise ValueError("sequence must be in 0..499")
    order = sequence * 2 + (1 if sex == "M" else 0)
    first17 = f"{division_code}{birth_date:%Y%m%d}{order:03d}"
    return first17 + id_check_char(first17)
