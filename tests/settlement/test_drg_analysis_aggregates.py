"""The DRG indices' pre-aggregates (settlement.analysis.aggregates, issue 16): the same figures as the
live statement at every level, hand-worked figures read back from them, when they are (not) used,
the three doors that rebuild them, and the thresholds taken from the year's audit policy."""
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from alliances.models import InstitutionLevel
from settlement.analysis import aggregates, drg, pages
from settlement.analysis.models import DrgAnalysisYear, DrgIndexRow
from settlement.engine import services
from settlement.engine.models import PaymentPolicy, RunStatus
from settlement.models import ApprovalStatus, InpatientCase
from tests import factories
from tests.settlement.inpatient_builders import D, budget, case, group

POOL = "330502-二级及以上"
OTHER_POOL = "330503-二级及以上"


@pytest.fixture
def year_with_run(county, other_county, django_capture_on_commit_callbacks):
    """Three institutions in two pools, deaths, high and low cases and a computed DRG run.

    | inst   | pool  | group | total    | personal | stay | note                         |
    | A 三级 | 330502 | G1    | 10000.00 | 2000.00  | 4    |                              |
    | A      |        | G1    | 35000.00 | 5000.00  | 9    | > 3 × 10000: high            |
    | A      |        | G2    | 20000.00 | 4000.00  | 10   | died                         |
    | A      |        | ZZ9   |  5000.00 | 1000.00  | 3    | not in the catalogue         |
    | B 二级 | 330502 | G1    |  3000.00 |  600.00  | 2    | < 0.4 × 10000: low           |
    | B      |        | G2    | 50000.00 | 8000.00  | 12   | > 2 × 20000: high            |
    | C 二级 | 330503 | G1    | 12000.00 | 2400.00  | 5    |                              |
    """
    a = factories.institution(county=county, level=InstitutionLevel.TERTIARY, name="甲医院")
    b = factories.institution(county=county, level=InstitutionLevel.SECONDARY, name="乙医院")
    c = factories.institution(county=other_county, level=InstitutionLevel.SECONDARY, name="丙医院")
    group("G1", "100.0000", "10000.00")
    group("G2", "200.0000", "20000.00")
    PaymentPolicy.objects.create(scheme="drg", year=2025, name="DRG点数法", parameters={},
                                 status=ApprovalStatus.APPROVED)
    p = factories.person()
    case(a, p, "2025-01-03", "2025-01-07", drg="G1", total="10000.00", personal="2000.00")
    case(a, p, "2025-02-01", "2025-02-10", drg="G1", total="35000.00", personal="5000.00")
    dead = case(a, p, "2025-02-11", "2025-02-21", drg="G2", total="20000.00", personal="4000.00")
    case(a, p, "2025-03-01", "2025-03-04", drg="ZZ9", total="5000.00", personal="1000.00")
    case(b, p, "2025-03-01", "2025-03-03", drg="G1", total="3000.00", personal="600.00")
    case(b, p, "2025-05-01", "2025-05-13", drg="G2", total="50000.00", personal="8000.00")
    case(c, p, "2025-05-01", "2025-05-06", drg="G1", total="12000.00", personal="2400.00")
    InpatientCase.objects.filter(pk=dead.pk).update(discharge_mode="5")
    budget(POOL, "60000.00")
    budget(OTHER_POOL, "9000.00")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run("drg", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    return a, b, c, run


def keyed(items):
    return {(i.level, i.institution_id, i.pool_code, i.drg_code, i.month): i for i in items}


def test_a_computed_drg_run_builds_the_years_rows_and_they_equal_the_live_statement(year_with_run):
    a, b, c, run = year_with_run
    built = DrgAnalysisYear.objects.get(year=2025)  # rebuilt after the run's commit (finish_run)
    assert built.run_id == run.pk
    the_basis = drg.basis(2025)
    assert aggregates.is_fresh(the_basis)
    levels = tuple(drg.SETS)
    live, stored = keyed(drg.indices(2025, levels)), keyed(aggregates.indices(2025, levels))
    assert live.keys() == stored.keys() and len(live) > 20
    assert live == stored  # every figure of every row, 结算盈亏 included
    for pool in (POOL, OTHER_POOL):  # a pool's rows picked out of the city-wide rows: the live pool statement
        assert keyed(aggregates.indices(2025, levels, pool_code=pool)) == keyed(drg.indices(2025, levels, pool_code=pool))


def test_hand_worked_figures_read_back_from_the_rows(year_with_run):
    a, b, c, run = year_with_run
    rows = keyed(aggregates.indices(2025, ("institution", "pool")))
    ia, ib = rows[("institution", a.pk, POOL, None, None)], rows[("institution", b.pk, POOL, None, None)]
    # City means: G1 (10000 + 35000 + 3000 + 12000)/4 = 15000; G2 (20000 + 50000)/2 = 35000.
    # A: grouped G1, G1, G2 → CMI (1 + 1 + 2)/3 = 1.3333; cost (10000/15000 + 35000/15000 + 20000/35000)/3
    #    = (0.666667 + 2.333333 + 0.571429)/3 = 1.1905; 入组率 3/4 = 0.75; 35000 > 3 × 10000 → 1 high.
    assert (ia.cases, ia.grouped_cases, ia.groups, ia.grouping_rate) == (4, 3, 2, D("0.7500"))
    assert (ia.cmi, ia.cost_index, ia.high_cases, ia.low_cases) == (D("1.3333"), D("1.1905"), 1, 0)
    # B: 3000 < 0.4 × 10000 → low; 50000 > 2 × 20000 → high. CMI (1 + 2)/2 = 1.5.
    assert (ib.cmi, ib.high_cases, ib.low_cases) == (D("1.5000"), 1, 1)
    # Pool 330502: A's four and B's two cases; 6 cases, 5 grouped.
    pool = rows[("pool", None, POOL, None, None)]
    assert (pool.cases, pool.grouped_cases, pool.high_cases, pool.low_cases) == (6, 5, 2, 1)
    # 结算盈亏 = points × PV − 统筹支付 equals the run's Q − A for each institution.
    results = {r.unit_code: r for r in run.results.all()}
    for inst, item in ((a, ia), (b, ib)):
        assert item.balance == results[inst.code].quota - results[inst.code].actual
    # The monthly rows add up to the year: A's months 1, 2, 3 hold 1, 2 and 1 cases.
    months = keyed(aggregates.indices(2025, ("institution_month",)))
    assert [months[("institution_month", a.pk, POOL, None, m)].cases for m in (1, 2, 3)] == [1, 2, 1]


def test_the_page_reads_the_rows_and_shows_the_same_figures_as_live(year_with_run, make_user):
    a, b, c, run = year_with_run
    the_basis = drg.basis(2025)
    for role, scope in (("city", None), ("hospital", a.code)):
        user = make_user(role, scope)
        stored = pages.page(2025, POOL, user, the_basis=the_basis)
        DrgAnalysisYear.objects.filter(year=2025).update(run_id=None)  # stale: the page computes live
        live = pages.page(2025, POOL, user, the_basis=drg.basis(2025))
        aggregates.rebuild_year(2025)
        assert stored.pop("aggregated") is True and live.pop("aggregated") is False
        assert stored == live


def test_stale_rows_are_not_used_and_the_page_says_so(year_with_run, client, make_user):
    client.force_login(make_user("city"))
    url = "/admin/settlement/drganalysis/"
    assert "实时计算" not in client.get(url, {"year": 2025}).content.decode()
    # A later DRG run of the year: the rows stand on the earlier one until rebuilt.
    DrgAnalysisYear.objects.filter(year=2025).update(run_id=0)
    assert not aggregates.is_fresh(drg.basis(2025))
    html = client.get(url, {"year": 2025}).content.decode()
    assert "本页为实时计算" in html and "rebuild_drg_analysis --year 2025" in html
    assert "甲医院" in html  # the figures are still there, computed live
    call_command("rebuild_drg_analysis", "--year", "2025")
    assert aggregates.is_fresh(drg.basis(2025))


def test_rebuild_replaces_the_year_and_never_duplicates(year_with_run):
    count = DrgIndexRow.objects.filter(year=2025).count()
    aggregates.rebuild_year(2025)
    aggregates.rebuild_year(2025)
    assert DrgIndexRow.objects.filter(year=2025).count() == count
    # One institution row per institution with cases, one pool row per pool.
    assert DrgIndexRow.objects.filter(year=2025, level="institution").count() == 3
    assert DrgIndexRow.objects.filter(year=2025, level="pool").count() == 2


def test_the_command_refuses_a_bad_year_in_chinese(db):
    with pytest.raises(CommandError, match="年度“20x5”无效"):
        call_command("rebuild_drg_analysis", "--year", "20x5")
    assert not DrgAnalysisYear.objects.exists()


def test_pool_list_from_the_rows_is_scoped(year_with_run):
    a, b, c, run = year_with_run
    assert aggregates.pool_codes(2025) == [POOL, OTHER_POOL]
    assert aggregates.pool_codes(2025, region_code="330503") == [OTHER_POOL]
    assert aggregates.pool_codes(2025, institution_ids=[a.pk]) == [POOL]


def test_high_and_low_multiples_come_from_the_years_audit_policy(year_with_run):
    a, b, c, run = year_with_run
    # Policy: 三级 above 4 × (A's 35000 = 3.5 × 10000 is no longer high), 二级 above 2.6 × (B's 50000 =
    # 2.5 × 20000 no longer high), low below 0.25 × (B's 3000 = 0.3 × 10000 no longer low).
    policy = PaymentPolicy.objects.create(
        scheme="audit", year=2025, name="审核规则", status=ApprovalStatus.APPROVED,
        parameters={"high_multiple_tertiary": "4", "high_multiple_other": "2.6", "drg_low_multiple": "0.25"},
    )
    the_basis = drg.basis(2025)
    assert the_basis.thresholds == drg.Thresholds(D("4"), D("2.6"), D("0.25"))
    assert not aggregates.is_fresh(the_basis)  # built on the defaults: not used
    rows = keyed(drg.indices(2025, ("institution",), the_basis=the_basis))
    ia, ib = rows[("institution", a.pk, POOL, None, None)], rows[("institution", b.pk, POOL, None, None)]
    assert (ia.high_cases, ib.high_cases, ib.low_cases) == (0, 0, 0)
    # 三级 at 3.4 ×: 35000 > 34000 → high again; the other thresholds as before.
    PaymentPolicy.objects.filter(pk=policy.pk).update(parameters={
        "high_multiple_tertiary": "3.4", "high_multiple_other": "2.6", "drg_low_multiple": "0.25"})
    aggregates.rebuild_year(2025)
    the_basis = drg.basis(2025)
    assert aggregates.is_fresh(the_basis)
    rows = keyed(aggregates.indices(2025, ("institution",), the_basis=the_basis))
    assert rows[("institution", a.pk, POOL, None, None)].high_cases == 1


def test_a_draft_audit_policy_is_not_used_and_the_page_says_so(year_with_run, client, make_user):
    PaymentPolicy.objects.create(scheme="audit", year=2025, name="审核规则", status=ApprovalStatus.DRAFT,
                                 parameters={"drg_low_multiple": "0.9"})
    the_basis = drg.basis(2025)
    assert the_basis.thresholds == drg.Thresholds(D("3"), D("2"), D("0.4"))  # the SPEC defaults
    assert "尚未审批" in the_basis.note
    client.force_login(make_user("city"))
    assert "高低倍率暂按默认阈值计算" in client.get("/admin/settlement/drganalysis/", {"year": 2025}).content.decode()


def export_rows(client, pool):
    import io

    from openpyxl import load_workbook

    response = client.get("/admin/settlement/drganalysis/", {"year": 2025, "pool": pool, "_export": "xlsx"})
    assert response.status_code == 200
    return [[c.value for c in row] for row in load_workbook(io.BytesIO(response.content)).active.iter_rows()][1:]


def test_the_page_and_its_export_from_the_rows_are_scoped_for_every_role(year_with_run, client, make_user):
    a, b, c, run = year_with_run
    url = "/admin/settlement/drganalysis/"
    assert aggregates.is_fresh(drg.basis(2025))
    # A hospital: itself beside the pool average, no other institution's row or name.
    client.force_login(make_user("hospital", b.code))
    html = client.get(url, {"year": 2025}).content.decode()
    assert "乙医院" in html and "统筹池平均" in html and "甲医院" not in html and "丙医院" not in html
    assert OTHER_POOL not in html  # not in the pool picker either
    assert [row[0] for row in export_rows(client, POOL)] == [b.code, POOL]
    refused = client.get(url, {"year": 2025, "pool": OTHER_POOL}, follow=True).content.decode()
    assert "不在您的数据范围内" in refused and "丙医院" not in refused
    # A county: its own pools only.
    client.force_login(make_user("county", "330503"))
    html = client.get(url, {"year": 2025}).content.decode()
    assert "丙医院" in html and "甲医院" not in html and POOL not in html
    assert [row[0] for row in export_rows(client, OTHER_POOL)] == [c.code, OTHER_POOL]
    # The city and the auditor: every pool, every institution of the chosen pool.
    for role in ("city", "auditor"):
        client.force_login(make_user(role))
        html = client.get(url, {"year": 2025}).content.decode()
        assert POOL in html and OTHER_POOL in html and "甲医院" in html and "乙医院" in html
        assert [row[0] for row in export_rows(client, POOL)] == [a.code, b.code, POOL]
    # The health commission: no page at all.
    client.force_login(make_user("health", "330502"))
    assert client.get(url, {"year": 2025}).status_code == 403
