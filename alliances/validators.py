import re

from django.core.exceptions import ValidationError

# GB/T 2260 province-level codes (first two digits of a division code; a resident ID starts with one too).
PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
     50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82}
)
_DIVISION = re.compile(r"^\d{6}$")
_INSTITUTION = re.compile(r"^H\d{11}$")


def validate_division_code(value):
    text = str(value or "")
    if not _DIVISION.match(text):
        raise ValidationError(f"区划代码“{value}”应为6位数字（GB/T 2260）")
    if int(text[:2]) not in PROVINCE_CODES:
        raise ValidationError(f"区划代码“{value}”的前两位不是有效的省级代码")


def validate_institution_code(value):
    if not _INSTITUTION.match(str(value or "")):
        raise ValidationError(
            f"机构编码“{value}”格式错误：应为H加6位区划代码再加5位数字，例如H33050200001"
        )
