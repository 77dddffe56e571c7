"""Open an uploaded spreadsheet safely and hand its rows out one at a time.

Every check that can reject the whole file runs before a single row is validated, so a hostile
or broken file costs little and lands nothing: size, container type, encryption, zip-bomb ratio
(measured while decompressing, because zip headers can lie), formulas, row and column limits.
"""
import codecs
import csv
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from django.conf import settings

from .errors import ImportRejected

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_FORMULA = re.compile(rb"<(?:[A-Za-z0-9_]+:)?f(?:\s[^>]*)?/?>")
_SHEET_XML = re.compile(r"^xl/worksheets/[^/]+\.xml$")
_CHUNK = 1 << 20


@dataclass
class Table:
    headers: list
    rows: Iterator  # of (row_number, cells)
    total: int  # data rows, as well as the format lets us know before reading them
    kind: str


def open_table(path) -> Table:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ImportRejected("找不到上传的文件") from None
    if size == 0:
        raise ImportRejected("文件是空的，请上传含表头的xlsx或csv文件")
    if size > settings.IMPORT_MAX_FILE_BYTES:
        raise ImportRejected(f"文件过大（{size // 1024 // 1024} MB），上限为{settings.IMPORT_MAX_FILE_BYTES // 1024 // 1024} MB")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if head.startswith(ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        return _open_xlsx(path)
    if head.startswith(OLE_MAGIC):
        _reject_ole(path)
    if b"\x00" in head or head.startswith((b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\x1f\x8b", b"Rar!", b"7z")):
        raise ImportRejected("文件不是电子表格：请上传xlsx或csv格式的文件")
    return _open_csv(path)


def _reject_ole(path):
    with open(path, "rb") as fh:
        data = fh.read(4 * _CHUNK)
    if "EncryptedPackage".encode("utf-16-le") in data or "EncryptionInfo".encode("utf-16-le") in data:
        raise ImportRejected("文件已加密（设置了打开密码），无法读取：请在Excel/WPS中取消密码后另存为xlsx再上传")
    raise ImportRejected("这是旧版Excel（.xls）或其他Office格式的文件：请另存为.xlsx或.csv后上传")


# --- xlsx -------------------------------------------------------------------------------


def _open_xlsx(path):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise ImportRejected("文件已损坏（压缩包不完整或被截断），请在Excel/WPS中重新保存后上传") from None
    with archive:
        names = archive.namelist()
        if "xl/workbook.xml" not in names:
            raise ImportRejected("文件不是Excel xlsx工作簿（可能是Word等其他格式）：请上传xlsx或csv文件")
        _check_zip_sizes(archive)
        _scan_sheets(archive)
    return _read_xlsx(path)


def _check_zip_sizes(archive):
    infos = archive.infolist()
    declared = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos) or 1
    _check_ratio(declared, compressed)


def _check_ratio(uncompressed, compressed):
    limit = settings.IMPORT_MAX_UNCOMPRESSED_BYTES
    if uncompressed > limit:
        raise ImportRejected(
            f"文件解压后过大（超过{limit // 1024 // 1024} MB），疑似压缩炸弹，已拒绝导入"
        )
    if uncompressed / max(compressed, 1) > settings.IMPORT_MAX_COMPRESSION_RATIO:
        raise ImportRejected(
            f"文件压缩比异常（超过{settings.IMPORT_MAX_COMPRESSION_RATIO}倍），疑似压缩炸弹，已拒绝导入"
        )


def _scan_sheets(archive):
    """Decompress every member once before the parser does: real sizes (zip headers can lie,
    so a bomb is caught here, not inside the parser) and formula cells in the worksheets."""
    total = 0
    compressed = sum(info.compress_size for info in archive.infolist()) or 1
    for info in archive.infolist():
        is_sheet = bool(_SHEET_XML.match(info.filename))
        tail = b""
        try:
            with archive.open(info) as member:
                while True:
                    block = member.read(_CHUNK)
                    if not block:
                        break
                    total += len(block)
                    _check_ratio(total, compressed)
                    window = tail + block if is_sheet else b""
                    # Every formula tag contains "<f" or ":f"; memchr-fast finds rule out most
                    # blocks before the regex (twice their cost) has to read them.
                    if is_sheet and (b"<f" in window or b":f" in window) and _FORMULA.search(window):
                        raise ImportRejected(
                            "文件中含有公式：请将公式单元格复制后“选择性粘贴为数值”，保存后重新上传"
                        )
                    tail = block[-64:]
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
            raise ImportRejected("文件已损坏（压缩数据不完整），请在Excel/WPS中重新保存后上传") from None
        except NotImplementedError:
            raise ImportRejected("文件使用了不支持的压缩方式或已加密，请重新保存为普通xlsx后上传") from None


def _read_xlsx(path):
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        sheet = workbook.get_sheet_by_index(0)
    except CalamineError as exc:
        raise ImportRejected(f"无法读取xlsx文件（{type(exc).__name__}），请在Excel/WPS中重新保存后上传") from None
    except Exception:  # calamine raises plain errors for some malformed parts
        raise ImportRejected("无法读取xlsx文件，文件可能已损坏，请重新保存后上传") from None
    if sheet.width > settings.IMPORT_MAX_COLUMNS:
        raise ImportRejected(f"列数过多（{sheet.width}列），上限为{settings.IMPORT_MAX_COLUMNS}列")
    if sheet.height - 1 > settings.IMPORT_MAX_ROWS:
        raise ImportRejected(f"行数过多（{sheet.height - 1}行），单个文件最多{settings.IMPORT_MAX_ROWS}行，请拆分后上传")
    start = sheet.start or (0, 0)
    rows = sheet.iter_rows()
    header_row = next(rows, None)
    if header_row is None:
        raise ImportRejected("文件中没有数据（第一个工作表为空）")
    headers = [_header_text(cell) for cell in header_row]
    first = start[0] + 2

    def numbered():
        for offset, cells in enumerate(rows):
            # Excel keeps formatted but empty rows; they are not data. The first cell decides
            # almost every row without the generator (0 and False are data, so not any(cells)).
            lead = cells[0] if cells else None
            if (lead != "" and lead is not None) or any(cell != "" and cell is not None for cell in cells):
                yield first + offset, cells

    return Table(headers=headers, rows=numbered(), total=max(0, sheet.height - 1), kind="xlsx")


def _header_text(cell):
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    return str(cell).strip().lstrip("\ufeff")


# --- csv --------------------------------------------------------------------------------


def _detect_encoding(path):
    """UTF-8 (with or without BOM) first, then GBK/GB18030; decoding the whole file proves it."""
    with open(path, "rb") as fh:
        bom = fh.read(3) == codecs.BOM_UTF8
    for encoding in ("utf-8-sig" if bom else "utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        newlines = 0
        try:
            with open(path, "rb") as fh:
                while True:
                    block = fh.read(4 * _CHUNK)
                    if not block:
                        decoder.decode(b"", final=True)
                        break
                    if b"\x00" in block:
                        raise ImportRejected("文件不是电子表格：请上传xlsx或csv格式的文件")
                    decoder.decode(block)
                    newlines += block.count(b"\n")
        except UnicodeDecodeError:
            continue
        return encoding, newlines
    raise ImportRejected("无法识别csv文件的编码：请另存为“CSV UTF-8”或GBK编码的csv后上传")


def _open_csv(path):
    encoding, newlines = _detect_encoding(path)
    if newlines - 1 > settings.IMPORT_MAX_ROWS:
        raise ImportRejected(f"行数过多（约{newlines - 1}行），单个文件最多{settings.IMPORT_MAX_ROWS}行，请拆分后上传")
    handle = open(path, encoding=encoding, newline="")
    try:
        sample = handle.read(65536)
        handle.seek(0)
        dialect = csv.excel
        if sample.split("\n", 1)[0].count("\t") > sample.split("\n", 1)[0].count(","):
            dialect = csv.excel_tab
        reader = csv.reader(handle, dialect)
        try:
            header_row = next(reader, None)
        except csv.Error:
            raise ImportRejected("csv文件格式错误，无法读取表头") from None
    except Exception:
        handle.close()
        raise
    if header_row is None:
        handle.close()
        raise ImportRejected("文件中没有数据")
    headers = [cell.strip().lstrip("\ufeff") for cell in header_row]
    if len(headers) > settings.IMPORT_MAX_COLUMNS:
        handle.close()
        raise ImportRejected(f"列数过多（{len(headers)}列），上限为{settings.IMPORT_MAX_COLUMNS}列")
    max_rows = settings.IMPORT_MAX_ROWS

    def numbered():
        try:
            number = 1
            for cells in reader:
                number += 1
                if not (cells and cells[0]) and not any(cells):
                    continue  # blank line or a line of empty cells (",,,,")
                if number - 1 > max_rows:
                    raise ImportRejected(f"行数过多，单个文件最多{max_rows}行，请拆分后上传")
                yield number, cells
        except csv.Error as exc:
            raise ImportRejected(f"csv文件第{number + 1}行格式错误（{exc}），请检查引号和分隔符") from None
        finally:
            handle.close()

    return Table(headers=headers, rows=numbered(), total=max(0, newlines - 1), kind="csv")
