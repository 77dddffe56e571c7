"""The two ways a chunk lands on PostgreSQL: new keys COPYed straight into the table, and chunks
that meet a stored key going through the staging table. Both must write the same rows and history,
all or nothing, and a re-upload must change nothing."""
import datetime
import gc
from decimal import Decimal

import pytest
from django.db import connection

from settlement.imports import landing
from settlement.imports.services import import_file
from settlement.models import CapitationStandard, OutpatientClaim
from tests.settlement.test_import_support import city, model_counts, write_csv  # noqa: F401

CLAIM_HEADERS = ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"]
ROW_FIELDS = ("serial", "person_id", "institution_id", "visit_date", "insurance_type", "visit_type", "disease_id",
              "total_cost", "fund_paid", "personal_paid", "referral")


def claim(person, serial, total="100.00", fund="60.00", personal="40.00", referral="否"):
    return [serial, person.id_number, "H33050200001", "2024-01-05", "普通门诊", "", total, fund, personal, referral]


def rows_by_serial():
    return {row[0]: row for row in OutpatientClaim.objects.order_by("serial").values_list(*ROW_FIELDS)}


def history_by_serial():
    return {
        row[0]: row for row in OutpatientClaim.history.order_by("serial", "history_id").values_list(
            *ROW_FIELDS, "history_type", "history_change_reason", "history_user_id",
        )
    }


@pytest.fixture
def spy_paths(monkeypatch):
    """Which way each chunk went: 'copy' for a COPY that stayed, 'stage' for the staging table."""
    paths = []
    copy_new, upsert = landing._Landing._copy_new, landing._Landing._upsert

    def spied_copy_new(self, chunk):
        landed = copy_new(self, chunk)
        if landed:
            paths.append("copy")
        return landed

    def spied_upsert(self, chunk):
        paths.append("stage")
        return upsert(self, chunk)

    monkeypatch.setattr(landing._Landing, "_copy_new", spied_copy_new)
    monkeypatch.setattr(landing._Landing, "_upsert", spied_upsert)
    return paths


@pytest.mark.parametrize("direct", [True, False], ids=["copy", "stage"])
def test_both_ways_write_the_same_rows_and_history(city, tmp_path, monkeypatch, spy_paths, direct):
    if not direct:
        monkeypatch.setattr(landing, "_direct_allowed", lambda resource: False)
    path = write_csv(tmp_path / "claims.csv", CLAIM_HEADERS, [
        claim(city.p1, "MZ1"), claim(city.p2, "MZ2", total="88.50", fund="80.00", personal="8.50", referral="是"),
    ])
    result = import_file("outpatient_claims", path)
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    assert spy_paths == ["copy" if direct else "stage"]
    jan5 = datetime.date(2024, 1, 5)
    # p1 is insured as 居民 and p2 as 职工 (the fixture); the claim takes the person's type.
    expected = {
        "MZ1": ("MZ1", city.p1.pk, city.a.pk, jan5, "居民", "普通门诊", None, Decimal("100.00"), Decimal("60.00"),
                Decimal("40.00"), False),
        "MZ2": ("MZ2", city.p2.pk, city.a.pk, jan5, "职工", "普通门诊", None, Decimal("88.50"), Decimal("80.00"),
                Decimal("8.50"), True),
    }
    assert rows_by_serial() == expected
    assert history_by_serial() == {serial: (*row, "+", "表格导入", None) for serial, row in expected.items()}
    # Ids follow the file, and each history row carries the id of its row.
    first, second = OutpatientClaim.objects.order_by("serial")
    assert first.pk < second.pk
    assert {h.serial: h.id for h in OutpatientClaim.history.all()} == {"MZ1": first.pk, "MZ2": second.pk}


@pytest.mark.parametrize("group_rows, paths", [
    # MZ1-4 COPYed under one savepoint; the chunk with MZ5 undoes it, so MZ1-4 land again by staging.
    (100, ["copy", "copy", "stage", "stage", "stage", "stage"]),
    # The savepoint was released after MZ1-4 (the group was full): they stay as COPYed.
    (4, ["copy", "copy", "stage", "stage"]),
], ids=["group-undone", "group-kept"])
def test_stored_key_midway_lands_the_open_group_again_by_staging(city, tmp_path, monkeypatch, spy_paths, group_rows, paths):
    monkeypatch.setattr(landing, "CHUNK_ROWS", 2)
    monkeypatch.setattr(landing, "GROUP_ROWS", group_rows)
    write = lambda name, rows: write_csv(tmp_path / name, CLAIM_HEADERS, rows)  # noqa: E731
    import_file("outpatient_claims", write("earlier.csv", [claim(city.p1, "MZ5"), claim(city.p1, "MZ6")]))
    spy_paths.clear()
    # Chunks of two: MZ1-2 and MZ3-4 are new, MZ5 changed and MZ6 as stored, MZ7-8 new again.
    result = import_file("outpatient_claims", write("month.csv", [
        claim(city.p1, "MZ1"), claim(city.p1, "MZ2"), claim(city.p1, "MZ3"), claim(city.p1, "MZ4"),
        claim(city.p1, "MZ5", total="110.00", fund="70.00"), claim(city.p1, "MZ6"),
        claim(city.p1, "MZ7"), claim(city.p1, "MZ8"),
    ]))
    assert (result.created, result.updated, result.unchanged) == (6, 1, 1)
    # The chunk with MZ5-6 and the next go through the staging table (the next because the one
    # before it met stored keys).
    assert spy_paths == paths
    assert OutpatientClaim.objects.count() == 8
    changed = OutpatientClaim.objects.get(serial="MZ5")
    assert (changed.total_cost, changed.fund_paid) == (Decimal("110.00"), Decimal("70.00"))
    # 2 '+' from the earlier file, then 6 '+' and one '~' for MZ5; nothing for the unchanged MZ6.
    assert sorted(OutpatientClaim.history.values_list("serial", "history_type")) == [
        ("MZ1", "+"), ("MZ2", "+"), ("MZ3", "+"), ("MZ4", "+"), ("MZ5", "+"), ("MZ5", "~"), ("MZ6", "+"),
        ("MZ7", "+"), ("MZ8", "+"),
    ]
    new = list(OutpatientClaim.objects.filter(serial__in=["MZ1", "MZ2", "MZ3", "MZ4", "MZ7", "MZ8"]).order_by("pk"))
    assert [row.serial for row in new] == ["MZ1", "MZ2", "MZ3", "MZ4", "MZ7", "MZ8"]


def test_bad_row_after_copied_chunks_lands_nothing(city, transactional_db, tmp_path, monkeypatch, spy_paths):
    monkeypatch.setattr(landing, "CHUNK_ROWS", 2)
    rows = [claim(city.p1, f"MZ{i}") for i in range(1, 8)]
    rows.append(claim(city.p1, "MZ8", total="101.00"))  # 60.00 + 40.00 is not 101.00
    path = write_csv(tmp_path / "claims.csv", CLAIM_HEADERS, rows)

    result = import_file("outpatient_claims", path)
    assert not result.landed and [error.row for error in result.errors] == [9]
    assert spy_paths == ["copy", "copy", "copy"], "three chunks were COPYed before the bad row was read"
    assert model_counts(OutpatientClaim) == [(0, 0)]

    good = import_file("outpatient_claims", path, land_good_rows=True)
    assert (good.created, good.bad_rows) == (7, 1)
    assert model_counts(OutpatientClaim) == [(7, 7)]

    again = import_file("outpatient_claims", path, land_good_rows=True)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 7)
    assert model_counts(OutpatientClaim) == [(7, 7)]


def test_business_key_with_a_blank_part_is_matched_not_copied(city, tmp_path, spy_paths):
    # The unique constraint lets two NULL diseases coexist, so only the staging way (IS NOT
    # DISTINCT FROM) can tell that the second file's 普通门诊 row is the first file's row.
    headers = ["年度", "险种", "年龄段", "病种编码", "人头标准(元/人·年)"]
    import_file("capitation_standards", write_csv(tmp_path / "a.csv", headers, [[2024, "居民", "60周岁及以下", "", "360"]]))
    result = import_file("capitation_standards", write_csv(tmp_path / "b.csv", headers, [[2024, "居民", "60周岁及以下", "", "380"]]))
    assert (result.created, result.updated) == (0, 1)
    assert spy_paths == ["stage", "stage"]
    assert list(CapitationStandard.objects.values_list("disease_id", "amount")) == [(None, Decimal("380.00"))]
    assert list(CapitationStandard.history.order_by("history_id").values_list("history_type", flat=True)) == ["+", "~"]


def test_callers_transaction_gets_its_settings_back(city, tmp_path):
    thresholds = gc.get_threshold()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
        before = cursor.fetchone()
    import_file("outpatient_claims", write_csv(tmp_path / "claims.csv", CLAIM_HEADERS, [claim(city.p1, "MZ1")]))
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
        assert cursor.fetchone() == before == ("on", "on")
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0
