"""Outside a caller's transaction (CLI, worker) rows land on a second connection while the next
chunk is validated; it must still be all-or-nothing, exact with land-good-rows, and idempotent."""
import pytest

from contracts.models import Contract, FamilyDoctorTeam
from settlement.imports import landing
from settlement.imports.services import import_file
from settlement.models import OutpatientClaim
from tests.settlement.test_import_support import city, model_counts, write_csv  # noqa: F401

CLAIM_HEADERS = ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"]
ROWS = 25_000  # more than two chunks reach the landing connection before the bad row is read
BAD_ROW = 24_001  # file row number (the header is row 1)


def claims(city, bad_at=None):
    rows = []
    for i in range(ROWS):
        rows.append([f"MZ{i:06d}", city.p1.id_number if i % 2 else city.p2.id_number, "H33050200001", "2024-05-01",
                     "普通门诊", "", "10.00", "6.00", "4.00", "否"])
    if bad_at:
        rows[bad_at - 2][6] = "11.00"
    return rows


@pytest.mark.slow
def test_bad_row_after_chunks_were_sent_lands_nothing(city, transactional_db, tmp_path, monkeypatch):
    used = []
    monkeypatch.setattr(landing.OverlappedCopyLander, "_work", _spy(landing.OverlappedCopyLander._work, used))
    path = write_csv(tmp_path / "claims.csv", CLAIM_HEADERS, claims(city, bad_at=BAD_ROW))
    result = import_file("outpatient_claims", path)
    assert used, "the overlapped lander was not used outside a transaction"
    assert not result.landed and [e.row for e in result.errors] == [BAD_ROW]
    assert model_counts(OutpatientClaim) == [(0, 0)]

    good = import_file("outpatient_claims", path, land_good_rows=True)
    assert (good.created, good.bad_rows) == (ROWS - 1, 1)
    assert model_counts(OutpatientClaim) == [(ROWS - 1, ROWS - 1)]
    assert not OutpatientClaim.objects.filter(serial=f"MZ{BAD_ROW - 2:06d}").exists()

    again = import_file("outpatient_claims", path, land_good_rows=True)
    assert (again.created, again.updated, again.unchanged) == (0, 0, ROWS - 1)
    assert model_counts(OutpatientClaim) == [(ROWS - 1, ROWS - 1)]


def test_contracts_create_teams_on_the_landing_connection(city, transactional_db, tmp_path):
    headers = ["身份证号", "机构编码", "团队名称", "签约日期", "解约日期", "服务包", "核实日期"]
    rows = [[city.p1.id_number, "H33050200001", "新团队", "2024-01-01", "", "", ""],
            [city.p2.id_number, "H33050200001", "新团队", "2024-01-01", "", "", ""]]
    result = import_file("contracts", write_csv(tmp_path / "c.csv", headers, rows))
    assert result.created == 2
    team = FamilyDoctorTeam.objects.get(name="新团队")
    assert set(Contract.objects.values_list("team_id", flat=True)) == {team.pk}
    assert FamilyDoctorTeam.history.filter(name="新团队").count() == 1


def _spy(work, used):
    def wrapped(self):
        used.append(True)
        return work(self)

    return wrapped


def test_the_kpi_refresh_after_an_overlapped_landing_plans_with_hash_joins(city, transactional_db, tmp_path, monkeypatch):
    """The chunks land by index probes (hash and merge joins off); the KPI refresh that runs last in
    the same transaction groups a month of claims against every person, and gets them back."""
    from settlement.kpi_aggregates.services import KpiDelta

    seen = []
    apply = KpiDelta.apply

    def spying(delta, cursor):
        cursor.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
        seen.append(cursor.fetchone())
        return apply(delta, cursor)

    monkeypatch.setattr(KpiDelta, "apply", spying)
    rows = [[f"MZ{i:06d}", city.p1.id_number, "H33050200001", "2024-05-01", "普通门诊", "", "10.00", "6.00", "4.00", "否"]
            for i in range(3)]
    assert import_file("outpatient_claims", write_csv(tmp_path / "claims.csv", CLAIM_HEADERS, rows)).created == 3
    assert seen == [("on", "on")]
