"""Broken and hostile files: one clear Chinese message, nothing lands (SPEC §4)."""
import datetime
import io
import zipfile
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from contracts.models import InsuredPerson
from settlement.imports.errors import ImportRejected
from settlement.imports.readers import OLE_MAGIC
from settlement.imports.services import import_file
from settlement.models import OutpatientClaim
from tests.settlement.test_import_support import city, model_counts, write_csv, write_xlsx  # noqa: F401

CLAIM_HEADERS = ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"]


def claim(city, serial="MZ1", visit="2024-01-05", id_number=None):
    return [serial, id_number or city.p1.id_number, "H33050200001", visit, "普通门诊", "", "100.00", "60.00", "40.00", "否"]


def rejected(path, resource="outpatient_claims", **kwargs):
    before = model_counts(OutpatientClaim, InsuredPerson)
    with pytest.raises(ImportRejected) as info:
        import_file(resource, path, **kwargs)
    assert model_counts(OutpatientClaim, InsuredPerson) == before
    return info.value.message


def test_not_a_spreadsheet(city, tmp_path):
    png = tmp_path / "photo.xlsx"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert rejected(png) == "文件不是电子表格：请上传xlsx或csv格式的文件"
    docx = tmp_path / "letter.xlsx"
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    assert "不是Excel xlsx工作簿" in rejected(docx)


def test_empty_file(city, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert rejected(empty) == "文件是空的，请上传含表头的xlsx或csv文件"


def test_encrypted_workbook(city, tmp_path):
    # An Excel file with an open password is an OLE compound file holding an EncryptedPackage stream.
    path = tmp_path / "secret.xlsx"
    path.write_bytes(OLE_MAGIC + b"\x00" * 504 + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 64
                     + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 1024)
    assert "文件已加密" in rejected(path)
    legacy = tmp_path / "old.xls"
    legacy.write_bytes(OLE_MAGIC + b"\x00" * 2048)
    assert "旧版Excel（.xls）" in rejected(legacy)


def test_truncated_xlsx(city, tmp_path):
    path = write_xlsx(tmp_path / "full.xlsx", CLAIM_HEADERS, [claim(city)])
    data = path.read_bytes()
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(data[: len(data) // 2])
    assert "文件已损坏" in rejected(cut)


def test_zip_bomb_rejected_before_parsing(city, tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b" " * (30 * 1024 * 1024))
    assert "疑似压缩炸弹" in rejected(path)


def test_uncompressed_size_limit(city, tmp_path, settings):
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = 2000
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, [claim(city)])
    assert "文件解压后过大" in rejected(path)


def test_too_many_rows_and_columns(city, tmp_path, settings):
    settings.IMPORT_MAX_ROWS = 2
    rows = [claim(city, f"MZ{i}") for i in range(3)]
    assert "行数过多" in rejected(write_xlsx(tmp_path / "rows.xlsx", CLAIM_HEADERS, rows))
    assert "行数过多" in rejected(write_csv(tmp_path / "rows.csv", CLAIM_HEADERS, rows))
    settings.IMPORT_MAX_ROWS = 100
    settings.IMPORT_MAX_COLUMNS = 5
    assert "列数过多" in rejected(write_xlsx(tmp_path / "cols.xlsx", CLAIM_HEADERS, rows))
    assert "列数过多" in rejected(write_csv(tmp_path / "cols.csv", CLAIM_HEADERS, rows))


def test_missing_required_headers_are_named(city, tmp_path):
    headers = [h for h in CLAIM_HEADERS if h not in ("就诊日期", "统筹支付")]
    path = write_csv(tmp_path / "claims.csv", headers, [["MZ1", city.p1.id_number, "H33050200001", "普通门诊", "", "1", "1", "否"]])
    assert rejected(path) == "缺少必填列：就诊日期、统筹支付（请使用导入模板的表头）"


def test_formula_cells_rejected(city, tmp_path):
    path = write_xlsx(tmp_path / "formula.xlsx", CLAIM_HEADERS,
                      [["MZ1", city.p1.id_number, "H33050200001", "2024-01-05", "普通门诊", "", "=H2+I2", "60.00", "40.00", "否"]])
    assert "文件中含有公式" in rejected(path)


def test_unknown_encoding_rejected(city, tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes("结算流水号,身份证号\n".encode("utf-8") + b"\xff\xfe\xff\xff\n")
    assert "无法识别csv文件的编码" in rejected(path)


def test_gbk_csv_is_decoded(city, tmp_path):
    path = write_csv(tmp_path / "gbk.csv", CLAIM_HEADERS, [claim(city)], encoding="gbk")
    result = import_file("outpatient_claims", path)
    assert (result.created, result.bad_rows) == (1, 0)
    assert OutpatientClaim.objects.get().visit_type == "普通门诊"


def test_utf8_csv_with_and_without_bom(city, tmp_path):
    with_bom = write_csv(tmp_path / "bom.csv", CLAIM_HEADERS, [claim(city, "MZ1")], encoding="utf-8-sig")
    without = write_csv(tmp_path / "plain.csv", CLAIM_HEADERS, [claim(city, "MZ2")], encoding="utf-8")
    assert import_file("outpatient_claims", with_bom).created == 1
    assert import_file("outpatient_claims", without).created == 1


def test_excel_dates_real_serial_and_text(city, tmp_path):
    rows = [claim(city, "MZ1", datetime.datetime(2024, 2, 29)), claim(city, "MZ2", 45292), claim(city, "MZ3", "2024/3/5")]
    import_file("outpatient_claims", write_xlsx(tmp_path / "dates.xlsx", CLAIM_HEADERS, rows))
    assert dict(OutpatientClaim.objects.values_list("serial", "visit_date")) == {
        "MZ1": datetime.date(2024, 2, 29), "MZ2": datetime.date(2024, 1, 1), "MZ3": datetime.date(2024, 3, 5),
    }


def test_id_that_arrived_as_a_number_is_a_bad_row(city, tmp_path):
    number_cell = float(city.p1.id_number[:17] + "0")  # what Excel keeps of an ID typed as a number
    path = write_xlsx(tmp_path / "ids.xlsx", CLAIM_HEADERS, [claim(city, "MZ1", id_number=number_cell)])
    result = import_file("outpatient_claims", path)
    assert not result.landed and OutpatientClaim.objects.count() == 0
    [error] = result.errors
    assert (error.row, error.column) == (2, "身份证号")
    assert "设置为“文本”格式" in error.reason
    text_path = write_csv(tmp_path / "ids.csv", CLAIM_HEADERS, [claim(city, "MZ1", id_number="3.30522200008012E+17")])
    [error] = import_file("outpatient_claims", text_path).errors
    assert (error.value, "设置为“文本”格式" in error.reason) == ("3.30522200008012E+17", True)


def test_long_serial_as_number_is_a_bad_row(city, tmp_path):
    path = write_xlsx(tmp_path / "serial.xlsx", CLAIM_HEADERS, [claim(city, 2.0240105000001235e19)])
    [error] = import_file("outpatient_claims", path).errors
    assert error.column == "结算流水号" and "设置为“文本”格式" in error.reason


def test_cli_reports_rejection_in_one_line(city, tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(b"%PDF-1.4 \x00\x01")
    with pytest.raises(CommandError) as info:
        call_command("import_data", "outpatient_claims", str(path))
    assert str(info.value) == "文件不是电子表格：请上传xlsx或csv格式的文件"
    with pytest.raises(CommandError, match="未知的导入类型“claims”"):
        call_command("import_data", "claims", str(path))


def test_cli_prints_every_bad_row_and_lands_nothing(city, tmp_path):
    rows = [claim(city, "MZ1"), claim(city, "MZ2", "2024-02-30"), claim(city, "MZ3", id_number="330502197005170033")]
    rows[0][8] = "41.00"
    path = write_csv(tmp_path / "bad.csv", CLAIM_HEADERS, rows)
    err = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("import_data", "outpatient_claims", str(path), stderr=err)
    assert "共3行，其中3行有错误，未导入任何数据" in str(info.value)
    lines = err.getvalue().splitlines()
    assert lines == [
        "第2行\t列：总费用\t值：100.00\t原因：统筹支付（60.00）与个人负担（41.00）之和应等于总费用（允许误差0.01元）",
        "第3行\t列：就诊日期\t值：2024-02-30\t原因：不是有效日期",
        "第4行\t列：身份证号\t值：330502197005170033\t原因：身份证号校验位错误，请核对号码",
    ]
    assert OutpatientClaim.objects.count() == 0


def test_cli_success_prints_counts(city, tmp_path):
    path = write_csv(tmp_path / "ok.csv", CLAIM_HEADERS, [claim(city, "MZ1"), claim(city, "MZ2")])
    out = io.StringIO()
    call_command("import_data", "outpatient_claims", str(path), stdout=out)
    assert out.getvalue().strip() == "门诊结算记录：共2行，新增2行，更新0行，未变化0行。"
    assert sum(OutpatientClaim.objects.values_list("total_cost", flat=True)) == Decimal("200.00")


def test_zip_bomb_with_lying_headers_is_measured_while_decompressing(city, tmp_path, settings):
    """A member whose header claims a small size still gets counted by what it really inflates to."""
    settings.IMPORT_MAX_COMPRESSION_RATIO = 1_000_000  # only the real-size limit is under test here
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = 5 * 1024 * 1024
    path = tmp_path / "liar.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/sharedStrings.xml", b"<sst>" + b"A" * (8 * 1024 * 1024) + b"</sst>")
    data = bytearray(path.read_bytes())
    # Rewrite the declared uncompressed size (central directory and local header) to 100 bytes.
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/sharedStrings.xml")
    real = info.file_size.to_bytes(4, "little")
    assert data.count(real) >= 2
    data = data.replace(real, (100).to_bytes(4, "little"))
    path.write_bytes(bytes(data))
    message = rejected(path)
    # zipfile stops at the declared size and the CRC no longer matches: refused as damaged, never parsed.
    assert message == "文件已损坏（压缩数据不完整），请在Excel/WPS中重新保存后上传"


def test_blank_rows_are_skipped_and_row_numbers_kept(city, tmp_path):
    rows = [claim(city, "MZ1"), [None] * 10, claim(city, "MZ3", "2024-99-01")]
    [error] = import_file("outpatient_claims", write_xlsx(tmp_path / "gaps.xlsx", CLAIM_HEADERS, rows)).errors
    assert (error.row, error.column) == (4, "就诊日期")
    csv_rows = [claim(city, "MZ1"), [""] * 10, claim(city, "MZ3")]
    result = import_file("outpatient_claims", write_csv(tmp_path / "gaps.csv", CLAIM_HEADERS, csv_rows))
    assert (result.rows, result.created) == (2, 2)
