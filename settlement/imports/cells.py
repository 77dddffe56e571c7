"""Cell parsers: raw spreadsheet value in, Python value out, or CellError with a Chinese reason.

A cell arrives as text (csv, text cells), a number, a bool or a date (xlsx). Each parser accepts
what a careful reading allows and refuses to guess: an ID that arrived as a number has lost digits.
"""
import datetime
import re
from decimal import Decimal, InvalidOperation

from contracts.validators import parse_resident_id
from django.core.exceptions import ValidationError

from .errors import CellError

EXCEL_EPOCH = datetime.date(1899, 12, 30)
_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
_DATE_TEXT = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]00:00(?::00)?)?$")
_INSTITUTION = re.compile(r"^H\d{11}$")
_DIVISION = re.compile(r"^\d{6}$")
NUMBER_AS_TEXT = "该单元格是数字格式，长数字已丢失末尾几位：请把这一列设置为“文本”格式后重新输入或粘贴"
TRUE_WORDS = {"是", "Y", "y", "1", "TRUE", "True", "true", "yes", "YES"}
FALSE_WORDS = {"否", "N", "n", "0", "FALSE", "False", "false", "no", "NO"}


def shown(value):
    """How a raw value is quoted back to the user."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if not value.is_integer() or abs(value) >= 1e15 else str(int(value))
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def is_blank(value):
    return value is None or value == "" or (isinstance(value, str) and not value.strip())


def text(max_length):
    def parse(value):
        if isinstance(value, bool):
            raise CellError("应为文字")
        if isinstance(value, float):
            if not value.is_integer() or abs(value) >= 1e15:
                raise CellError(NUMBER_AS_TEXT if abs(value) >= 1e11 else "应为文字")
            value = int(value)
        if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
            raise CellError("应为文字，不应是日期")
        result = str(value).strip()
        if len(result) > max_length:
            raise CellError(f"长度超过{max_length}个字符")
        return result

    return parse


def code(max_length):
    """An identifier typed by people: a number cell is fine while exact, never past 15 digits."""
    inner = text(max_length)

    def parse(value):
        if value.__class__ is str:
            value = value.strip()
            if ("e" in value or "E" in value) and _SCIENTIFIC.match(value):
                raise CellError(NUMBER_AS_TEXT)
            if len(value) <= max_length:
                return value
        return inner(value)

    return parse


def resident_id(value):
    """The ID must come as text: as a number it has already lost its last digits."""
    if value.__class__ is str:
        number = value.strip()
        if len(number) == 18 and number[:17].isdigit():
            return number.upper()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise CellError(NUMBER_AS_TEXT)
    if not isinstance(value, str):
        raise CellError("身份证号应为18位文本")
    number = value.strip().upper()
    if _SCIENTIFIC.match(number):
        raise CellError(NUMBER_AS_TEXT)
    return number


def check_resident_id(number):
    """Full GB 11643 check; used for new persons (existing ones were checked on the way in)."""
    try:
        return parse_resident_id(number)
    except ValidationError as exc:
        raise CellError(exc.messages[0]) from None


def division_code(value):
    result = code(6)(value)
    if not _DIVISION.match(result):
        raise CellError("区划代码应为6位数字")
    return result


def institution_code(value):
    result = code(12)(value).upper()
    if not _INSTITUTION.match(result):
        raise CellError("机构编码格式错误：应为H加6位区划代码再加5位数字，例如H33050200001")
    return result


def date(value):
    if isinstance(value, datetime.datetime):
        if value.time() != datetime.time(0):
            raise CellError("日期不应带时间")
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, bool):
        raise CellError("应为日期（YYYY-MM-DD）")
    if isinstance(value, (int, float)):
        return _serial(value)
    if isinstance(value, str):
        textual = value.strip()
        match = _DATE_TEXT.match(textual)
        if match:
            try:
                return datetime.date(int(match[1]), int(match[2]), int(match[3]))
            except ValueError:
                raise CellError("不是有效日期") from None
        if textual.isdigit() and len(textual) <= 5:
            return _serial(int(textual))
    raise CellError("日期格式错误：应为YYYY-MM-DD，例如2024-01-31")


def _serial(number):
    # Excel serial day numbers; 1 = 1900-01-01 (the fictitious 1900-02-29 makes 1..60 unusable).
    if number != int(number) or not 61 <= number <= 2958465:
        raise CellError("日期格式错误：应为YYYY-MM-DD，例如2024-01-31")
    return EXCEL_EPOCH + datetime.timedelta(days=int(number))


def _decimal(value):
    if isinstance(value, bool) or isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        raise CellError("应为数字")
    if isinstance(value, float):
        # repr gives the shortest text that round-trips, i.e. what the user typed.
        value = repr(value)
    elif isinstance(value, str):
        value = value.strip().replace(",", "").replace("，", "")
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise CellError("应为数字") from None
    if not number.is_finite():
        raise CellError("应为数字")
    return number


def decimal(places, minimum=Decimal("0"), maximum=None, label="数值", max_digits=16):
    """Decimal with at most `places` decimals that fits a DecimalField(max_digits, places)."""
    quantum = Decimal(1).scaleb(-places)
    whole_digits = max_digits - places
    ceiling = Decimal(10) ** whole_digits
    plain = re.compile(r"^\d{1,%d}(?:\.\d{1,%d})?$" % (whole_digits, places))

    def parse(value):
        # Most cells are plain non-negative text within the places; the checks below are then moot.
        if value.__class__ is str and plain.match(value) and (maximum is None or Decimal(value) <= maximum):
            return Decimal(value)
        number = _decimal(value)
        if number.as_tuple().exponent < -places and number != number.quantize(quantum):
            raise CellError(f"{label}最多{places}位小数")
        if minimum is not None and number < minimum:
            raise CellError(f"{label}不能小于{minimum}")
        if maximum is not None and number > maximum:
            raise CellError(f"{label}不能大于{maximum}")
        if abs(number) >= ceiling:
            raise CellError(f"{label}过大：整数部分最多{whole_digits}位")
        return number.quantize(quantum)

    return parse


money = decimal(2, label="金额")
signed_money = decimal(2, minimum=None, label="金额")


def integer(minimum, maximum, label="数值"):
    def parse(value):
        number = _decimal(value)
        if number != number.to_integral_value():
            raise CellError(f"{label}应为整数")
        number = int(number)
        if not minimum <= number <= maximum:
            raise CellError(f"{label}应在{minimum}到{maximum}之间")
        return number

    return parse


year = integer(2000, 2100, "年度")
month = integer(1, 12, "月份")


def yes_no(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    textual = str(value).strip()
    if textual in TRUE_WORDS:
        return True
    if textual in FALSE_WORDS:
        return False
    raise CellError("应填是/否（也可填Y/N或1/0）")


def choice(values):
    allowed = tuple(values)
    listed = "、".join(allowed)

    def parse(value):
        textual = str(value).strip() if not isinstance(value, float) else shown(value)
        if textual not in allowed:
            raise CellError(f"应为以下之一：{listed}")
        return textual

    return parse
