"""Policy simulation (SPEC §11) of every scheme on the demo city: unchanged parameters reproduce the
base run to the cent, a fresh gather reproduces the stored inputs, and the factors act by identity
(DRG: Σ E = B per pool with the point value recomputed per pool).

One seed and one settlement of each scheme serve the module (as in test_seed_demo_settles): seeded
inside a transaction that is rolled back at the end.
"""
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from settlement.demo import default_year
from settlement.engine import codec, simulation as sim
from settlement.engine.base import RunContext, get_rule
from settlement.engine.models import SettlementRun
from settlement.engine.params import from_json
from settlement.engine.schemes.drg import budget_tolerance
from settlement.engine.simulation_models import FIGURE_FIELDS, SimulationStatus
from settlement.models import Job, JobStatus

D = Decimal
YEAR = default_year()
# Each test in its own transaction inside the module's (and the marker makes a lone run of this
# module set up the test database at all).
pytestmark = pytest.mark.django_db

SCHEMES = ["capitation", "special_outpatient", "family_doctor", "alliance_budget", "drg", "bed_day", "disease"]


def q2(value):
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def runs(django_db_setup, django_db_blocker):
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", "--size", "small", stdout=StringIO())
        for scheme in SCHEMES:
            call_command("settle", scheme, "--year", str(YEAR), "--sync", stdout=StringIO())
        yield {scheme: SettlementRun.objects.get(scheme=scheme, year=YEAR, region=None) for scheme in SCHEMES}
        transaction.set_rollback(True)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unchanged_parameters_reproduce_the_base_run_to_the_cent(runs, scheme):
    run = runs[scheme]
    s = sim.start_simulation(run, {}, sync=True)
    assert s.status == SimulationStatus.COMPUTED, s.failure_reason
    assert not s.regathered and s.changes == {} and s.factors == {}
    results = {r.unit_code: r for r in run.results.all()}
    units = list(s.units.all())
    assert results and len(units) == len(results) == run.units_total
    for u in units:
        r = results[u.unit_code]
        for field in FIGURE_FIELDS:
            assert getattr(u, field) == getattr(r, field) == getattr(u, f"base_{field}"), (u.unit_code, field)
        assert u.in_base and u.in_simulation
    assert sim.totals(units)["unchanged"] == len(units)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_fresh_gather_of_unchanged_data_equals_the_stored_inputs(runs, scheme):
    # The path a simulation takes when a change needs a new gather, with nothing changed.
    run = runs[scheme]
    rule = get_rule(scheme)
    params = from_json(rule.params_class, run.parameters)
    fresh = rule.simulation_gather(RunContext(scheme, run.year, run.region_code), params, sim.Factors())
    stored = {u.unit_code: codec.decode(u.inputs) for u in run.units.filter(computation=run.computation)}
    assert fresh == stored


def test_drg_budget_and_base_points_factors_keep_sigma_e_equal_to_b_per_pool(runs):
    run = runs["drg"]
    s = sim.start_simulation(run, {}, {"budget": "1.10", "base_points": "1.2"}, sync=True)
    assert s.status == SimulationStatus.COMPUTED, s.failure_reason
    assert s.regathered  # base points act per case, inside the gather
    pools = {}
    for u in s.units.all():
        pools.setdefault(u.details["pool_code"], []).append(u)
    base_budget = {r.details["pool_code"]: D(r.details["pool_budget"]) for r in run.results.all()}
    assert len(pools) > 1
    for code, members in pools.items():
        details = members[0].details
        budget = D(details["pool_budget"])
        assert budget == base_budget[code] * D("1.10")
        # PV = (B' + patient-borne cost of the pool) / the pool's points, 6 places, per pool.
        pv = ((budget + D(details["pool_personal_paid"])) / D(details["pool_points"])).quantize(D("0.000001"), rounding=ROUND_HALF_UP)
        assert all(D(m.details["point_value"]) == pv for m in members)
        # Σ E over the pool = B', within the rounding of each E and of PV.
        gap = abs(sum(m.entitled for m in members) - budget)
        assert gap <= budget_tolerance(len(members), D(details["pool_points"])), code
    assert not [w for w in s.warnings if "超出舍入误差" in w]


def test_a_changed_readmission_window_is_gathered_into_the_simulation_only(runs):
    run = runs["drg"]
    s = sim.start_simulation(run, {"readmission_days": "30"}, sync=True)
    assert s.regathered and s.status == SimulationStatus.COMPUTED, s.failure_reason
    assert s.parameters["readmission_days"] == 30
    pools = {}
    for u in s.units.all():
        pools.setdefault(u.details["pool_code"], []).append(u)
    for members in pools.values():
        budget = D(members[0].details["pool_budget"])
        assert abs(sum(m.entitled for m in members) - budget) <= budget_tolerance(
            len(members), D(members[0].details["pool_points"]))
    # A longer window halves at least as many earlier stays as the default 10 days.
    assert sum(u.details["readmitted_cases"] for u in s.units.all()) >= sum(
        r.details["readmitted_cases"] for r in run.results.all())
    assert run.units.filter(computation=run.computation).count() == run.units_total


def test_bed_day_standards_factor(runs):
    run = runs["bed_day"]
    s = sim.start_simulation(run, {}, {"standards": "1.10"}, sync=True)
    assert not s.regathered
    for u in s.units.all():
        r = run.results.get(unit_code=u.unit_code)
        # E = Σ days × quota × 1.1, rounded once; A and 已拨付 unchanged.
        expected = q2(sum(D(line["days"]) * D(line["quota_per_day"]) * D("1.10")
                          for line in r.details["by_category"].values()))
        assert u.entitled == expected and u.actual == r.actual and u.paid == r.paid


def test_alliance_budget_budget_factor(runs):
    run = runs["alliance_budget"]
    s = sim.start_simulation(run, {}, {"budget": "0.9"}, sync=True)
    for u in s.units.all():
        r = run.results.get(unit_code=u.unit_code)
        assert u.quota == q2(r.quota * D("0.9")) and u.actual == r.actual


def test_disease_standards_factor_is_applied_per_case_in_a_fresh_gather(runs):
    run = runs["disease"]
    s = sim.start_simulation(run, {}, {"standards": "1.05"}, sync=True)
    assert s.regathered and s.status == SimulationStatus.COMPUTED, s.failure_reason
    assert sim.totals(s.units.all())["gaining"] > 0
    assert sum(u.entitled for u in s.units.all()) > sum(r.entitled for r in run.results.all())


def test_special_outpatient_standards_factor_keeps_the_calibration(runs):
    run = runs["special_outpatient"]
    s = sim.start_simulation(run, {}, {"standards": "1.2"}, sync=True)
    for u in s.units.all():
        r = run.results.get(unit_code=u.unit_code)
        assert u.details["校正系数k"] == r.details["校正系数k"]
        # Q = k · Σ S·w, each S × 1.2: within the 分 of rounding Q once each way.
        assert abs(u.quota - r.quota * D("1.2")) <= D("0.01")


def test_family_doctor_standards_factor(runs):
    run = runs["family_doctor"]
    s = sim.start_simulation(run, {"default_score": "80"}, {"standards": "1.5"}, sync=True)
    assert s.regathered  # the default score is filled in by the gather
    for u in s.units.all():
        r = run.results.get(unit_code=u.unit_code)
        assert u.actual == q2(r.actual * D("1.5"))


def test_a_simulation_that_cannot_be_computed_fails_with_its_reason_and_stores_nothing(runs):
    run = runs["drg"]
    # One city pool needs a budget row keyed by the city's code, which the demo does not have.
    s = sim.start_simulation(run, {"pool_mode": "city"}, sync=True)
    assert s.status == SimulationStatus.FAILED and s.regathered
    assert "没有预算额度" in s.failure_reason and not s.units.exists()
    assert Job.objects.get(pk=s.job_id).status == JobStatus.FAILED
