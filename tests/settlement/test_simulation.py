"""Policy simulation (SPEC §11) on hand-built data: moved amounts worked out by hand, fresh gathers,
refusals, the guards that keep a simulation away from money, and an untouched base run."""
from decimal import Decimal

import pytest

from settlement.approval import Refused
from settlement.engine import services, simulation as sim
from settlement.engine.export import export_bytes, export_run
from settlement.engine.models import RunUnit, SettlementRun, UnitResult
from settlement.engine.simulation_models import SimulationStatus, SimulationUnit
from settlement.models import Job, JobKind, JobStatus, Payment
from alliances.models import Alliance
from tests import factories
from tests.settlement.engine_data import claim, d, policy
from tests.settlement.test_engine_runs import build_two_alliances

D = Decimal


def unit(simulation, code):
    return simulation.units.get(unit_code=code)


@pytest.fixture
def capitation_run(db):
    """build_two_alliances: A has Q 1,800.00, A 800.00, S +1,000.00 → +850.00; B has Q 2,400.00,
    A 2,900.00, S −500.00 → −425.00 (85% either way)."""
    build_two_alliances()
    policy()
    run = services.start_run("capitation", 2025, sync=True)
    assert run.status == "computed"
    return run


def test_lower_retention_moves_each_alliance_by_the_hand_worked_amount(capitation_run):
    s = sim.start_simulation(capitation_run, {"retention": "0.80"}, sync=True)
    assert s.status == SimulationStatus.COMPUTED and not s.regathered
    assert s.changes == {"retention": "0.80"}
    a, b = unit(s, "YGT-A"), unit(s, "YGT-B")
    # A: surplus 1,000.00 × 80% = 800.00 instead of 850.00 → E 1,600.00, year-end 800.00: −50.00
    assert (a.base_unit_part, a.unit_part) == (D("850.00"), D("800.00"))
    assert (a.entitled, a.amount) == (D("1600.00"), D("800.00"))
    assert a.difference("amount") == D("-50.00")
    assert a.difference("quota") == a.difference("actual") == 0
    # B overspends: the retention ratio does not apply, −425.00 either way.
    assert (b.base_amount, b.amount) == (D("-425.00"), D("-425.00"))
    totals = sim.totals(s.units.all())
    assert (totals["gaining"], totals["losing"], totals["unchanged"]) == (0, 1, 1)
    # Fund outlay Σ E: 1,650.00 + 2,475.00 = 4,125.00 → 1,600.00 + 2,475.00 = 4,075.00
    assert totals["fund_outlay"] == {"base": D("4125.00"), "simulated": D("4075.00"), "difference": D("-50.00")}
    assert [u.unit_code for u in totals["largest"]] == ["YGT-A"]


def test_overspend_share_and_standards_factor_by_hand(capitation_run):
    s = sim.start_simulation(capitation_run, {"overspend_share": "0.80"}, {"standards": "1.10"}, sync=True)
    assert s.factors == {"standards": "1.10"} and not s.regathered
    a, b = unit(s, "YGT-A"), unit(s, "YGT-B")
    # A: 18 person-months × 110.00 = 1,980.00; S = 1,980.00 − 800.00 = 1,180.00 × 85% = 1,003.00 (+153.00)
    assert (a.quota, a.unit_part, a.amount) == (D("1980.00"), D("1003.00"), D("1003.00"))
    assert a.difference("amount") == D("153.00")
    # B: 12 × 220.00 = 2,640.00; S = 2,640.00 − 2,900.00 = −260.00 × 80% = −208.00 (+217.00 on −425.00)
    assert (b.quota, b.unit_part, b.amount) == (D("2640.00"), D("-208.00"), D("-208.00"))
    assert b.difference("amount") == D("217.00")


def add_head_with_claim(visit_type, amount):
    """One more person under contract at YGT-A's lead hospital all year, with one claim there."""
    lead = Alliance.objects.get(code="YGT-A").lead_hospital
    person = factories.person(lead.county)
    factories.contract(person, lead, d("2024-01-01"), verified_on=d("2024-01-02"))
    claim(person, lead, d("2025-03-03"), amount, visit_type=visit_type)


def test_a_gather_parameter_is_gathered_again_into_the_simulation_only(capitation_run):
    # After the base run: a new head with a 慢病门诊 claim of 200.00, not in the run's stored inputs.
    add_head_with_claim("慢病门诊", "200.00")

    unchanged = sim.start_simulation(capitation_run, {"retention": "0.850", "visit_types": ["普通门诊", "慢病门诊"]},
                                     sync=True)
    # Nothing changed: the stored inputs are used, the new claim and head are not seen.
    assert not unchanged.regathered and unchanged.changes == {}
    assert unit(unchanged, "YGT-A").actual == D("800.00")

    s = sim.start_simulation(capitation_run, {"visit_types": ["普通门诊"]}, sync=True)
    assert s.regathered and s.status == SimulationStatus.COMPUTED
    a = unit(s, "YGT-A")
    # Fresh gather: one more head (12 months × 100.00 = +1,200.00 → Q 3,000.00); its 慢病门诊 claim
    # does not count under 普通门诊 only, so A stays 800.00: S = 2,200.00 × 85% = 1,870.00.
    assert (a.quota, a.actual, a.unit_part, a.amount) == (D("3000.00"), D("800.00"), D("1870.00"), D("1870.00"))
    assert (a.base_quota, a.base_amount) == (D("1800.00"), D("850.00"))
    # … and the base run still has its own inputs and figures.
    assert UnitResult.objects.get(run=capitation_run, unit_code="YGT-A").quota == D("1800.00")


def test_bad_requests_are_refused_in_chinese_and_store_nothing(capitation_run, make_user):
    with pytest.raises(Refused, match="结余留用比例.*不能大于1"):
        sim.start_simulation(capitation_run, {"retention": "1.5"}, sync=True)
    with pytest.raises(Refused, match="未知参数"):
        sim.start_simulation(capitation_run, {"nonsense": "1"}, sync=True)
    with pytest.raises(Refused, match="预算调整系数（budget_factor）不适用于"):
        sim.start_simulation(capitation_run, {}, {"budget": "1.1"}, sync=True)
    with pytest.raises(Refused, match="标准调整系数.*不能小于0.01"):
        sim.start_simulation(capitation_run, {}, {"standards": "0"}, sync=True)
    with pytest.raises(Refused, match="应为数字"):
        sim.start_simulation(capitation_run, {}, {"standards": "abc"}, sync=True)
    with pytest.raises(Refused, match="只有市医保局和县区医保局可以模拟"):
        sim.start_simulation(capitation_run, {}, user=make_user("hospital", factories.institution().code))
    with pytest.raises(Refused, match="只有市医保局和县区医保局可以模拟"):
        sim.start_simulation(capitation_run, {}, user=make_user("auditor"))
    county_user = make_user("county", "330502")
    with pytest.raises(Refused, match="只能对本县区的结算批次"):
        sim.start_simulation(capitation_run, {}, user=county_user)  # a city-wide run
    assert not capitation_run.simulations.exists()
    assert not Job.objects.filter(kind=JobKind.SIMULATION).exists()


def test_a_draft_or_failed_run_cannot_be_simulated(db):
    build_two_alliances()
    policy()
    run = SettlementRun.objects.create(scheme="capitation", year=2025, status="draft")
    with pytest.raises(Refused, match="只有已计算、已审核或已拨付的结算批次可以模拟"):
        sim.start_simulation(run, {}, sync=True)


def test_in_the_background_with_a_job_and_progress(capitation_run, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        s = sim.start_simulation(capitation_run, {"retention": "0.80"})
    s.refresh_from_db()
    assert s.status == SimulationStatus.COMPUTED and (s.units_done, s.units_total, s.percent) == (2, 2, 100)
    job = Job.objects.get(pk=s.job_id)
    assert (job.kind, job.status, job.progress_done, job.progress_total) == (JobKind.SIMULATION, JobStatus.SUCCEEDED, 2, 2)
    second = sim.start_simulation(capitation_run, {"retention": "0.75"}, sync=True)
    assert (s.number, second.number) == (1, 2)  # kept and numbered per run


def stored(obj):
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def snapshot(run):
    run = SettlementRun.objects.get(pk=run.pk)
    return {
        "run": stored(run),
        "results": [stored(r) for r in UnitResult.objects.filter(run=run).order_by("pk")],
        "units": [stored(u) for u in RunUnit.objects.filter(run=run).order_by("pk")],
        "run_history": run.history.count(),
        "result_history": UnitResult.history.filter(run_id=run.pk).count(),
        "job": stored(Job.objects.get(pk=run.job_id)),
        "payments": [stored(p) for p in Payment.objects.order_by("pk")],
    }


def test_a_simulation_never_changes_the_base_run(capitation_run):
    services.approve_run(capitation_run)
    before = snapshot(capitation_run)
    sim.start_simulation(capitation_run, {"retention": "0.70", "overspend_share": "0.9"}, {"standards": "1.2"}, sync=True)
    sim.start_simulation(capitation_run, {"visit_types": ["普通门诊"]}, sync=True)  # a fresh gather too
    assert snapshot(capitation_run) == before


def test_a_simulation_cannot_be_approved_paid_or_exported_as_a_settlement(capitation_run, tmp_path):
    s = sim.start_simulation(capitation_run, {"retention": "0.80"}, sync=True)
    # Even holding a run's primary key, a simulation is refused: the guard is the type, not a lookup.
    s.pk = capitation_run.pk
    with pytest.raises(Refused, match="不是结算批次，不能审核"):
        services.approve_run(s)
    with pytest.raises(Refused, match="不是结算批次，不能确认拨付"):
        services.mark_paid(s)
    with pytest.raises(Refused, match="不能作为结算结果导出"):
        export_run(s, tmp_path / "out.xlsx")
    with pytest.raises(Refused, match="不能作为结算结果导出"):
        export_bytes(s)
    assert not (tmp_path / "out.xlsx").exists()
    assert SettlementRun.objects.get(pk=capitation_run.pk).status == "computed"
    # Nothing a simulation stores is a payment, and its rows cannot be written by hand.
    assert not Payment.objects.exists()
    assert SimulationUnit(unit_code="YGT-A").write_scope_refusal(None) == "模拟结果由模拟计算生成，不能手工修改"


def test_comparison_of_two_simulations(capitation_run):
    first = sim.start_simulation(capitation_run, {"retention": "0.80"}, sync=True)
    second = sim.start_simulation(capitation_run, {"retention": "0.90"}, sync=True)
    rows = sim.comparison([first, second])
    a = next(r for r in rows if r["unit_code"] == "YGT-A")
    # 1,000.00 × 80% = 800.00 and × 90% = 900.00 against the base 850.00
    assert a["base"] == D("850.00") and a["amounts"] == [D("800.00"), D("900.00")]
    assert a["differences"] == [D("-50.00"), D("50.00")]


def test_comparison_only_within_one_base_run(capitation_run):
    first = sim.start_simulation(capitation_run, {"retention": "0.80"}, sync=True)
    services.approve_run(capitation_run)
    newer = services.start_run("capitation", 2025, sync=True)
    other = sim.start_simulation(newer, {"retention": "0.80"}, sync=True)
    with pytest.raises(Refused, match="只能比较同一结算批次的模拟"):
        sim.comparison([first, other])


def test_a_run_computed_again_keeps_what_the_simulation_compared(capitation_run):
    s = sim.start_simulation(capitation_run, {"retention": "0.80"}, sync=True)
    add_head_with_claim("普通门诊", "200.00")
    again = services.start_run("capitation", 2025, sync=True)  # same draft version, new computation
    # Q 3,000.00 − A 1,000.00 = 2,000.00 × 85% = 1,700.00 now; the simulation still compares 850.00.
    assert UnitResult.objects.get(run=again, unit_code="YGT-A").amount == D("1700.00")
    assert unit(s, "YGT-A").base_amount == D("850.00")
    # The new computation's inputs are not the simulation's: a new simulation takes them.
    assert sim.start_simulation(SettlementRun.objects.get(pk=capitation_run.pk), {}, sync=True).base_computation == 2


def test_a_simulation_whose_job_died_is_shown_failed(capitation_run):
    s = sim.start_simulation(capitation_run, {"retention": "0.80"})  # queued; its message never sent here
    assert s.status == SimulationStatus.QUEUED
    Job.objects.filter(pk=s.job_id).update(status=JobStatus.FAILED, message="后台进程已中断（worker1已重启，任务未完成）")
    s = sim.settle_with_job(s)
    assert s.status == SimulationStatus.FAILED and "worker1已重启" in s.failure_reason
    assert not s.units.exists()


def test_a_county_bureau_simulates_its_own_countys_run(db, make_user):
    county, a, b = build_two_alliances()
    policy()
    run = services.start_run("capitation", 2025, county.code, sync=True)  # the city-wide policy applies
    user = make_user("county", county.code)
    s = sim.start_simulation(run, {"retention": "0.80"}, user=user, sync=True)
    assert s.status == SimulationStatus.COMPUTED and s.created_by == user and s.region == county
    # A: 1,000.00 × 80% = 800.00
    assert unit(s, "YGT-A").amount == D("800.00")
