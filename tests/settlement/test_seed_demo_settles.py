"""After `seed_demo --size small` staff can settle every registered scheme at once (SPEC §5–§7).

One seed (≈ 15 s) serves every scheme: the module-scoped fixture seeds inside a transaction that
is rolled back at the end, so other tests see an empty database.
"""
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from settlement.demo import default_year
from settlement.demo.policies import write_policies
from settlement.engine.base import registered_schemes
from settlement.engine.models import PaymentPolicy, RunStatus, SettlementRun
from settlement.models import ApprovalStatus, Assessment, Budget, Payment, Scheme

D = Decimal
YEAR = default_year()


def q2(value):
    """Half-up to 分, as SPEC §3 rounds money."""
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


SCHEMES = ["capitation", "special_outpatient", "family_doctor", "alliance_budget", "drg", "bed_day", "disease"]


@pytest.fixture(scope="module")
def settled(django_db_setup, django_db_blocker):
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", "--size", "small", stdout=StringIO())
        runs = {}
        for scheme in SCHEMES:
            out = StringIO()
            call_command("settle", scheme, "--year", str(YEAR), "--sync", stdout=out)
            runs[scheme] = (SettlementRun.objects.get(scheme=scheme, year=YEAR, region=None), out.getvalue())
        yield runs
        transaction.set_rollback(True)


def results(run):
    return list(run.results.order_by("unit_code"))


def paid_by_unit(scheme):
    return dict(Payment.objects.filter(scheme=scheme, year=YEAR).values_list("unit_code")
                .annotate(total=Sum("amount")).values_list("unit_code", "total"))


def test_every_registered_scheme_has_an_approved_demo_policy(settled, django_db_blocker):
    assert sorted(registered_schemes()) == sorted(SCHEMES)
    with django_db_blocker.unblock():
        policies = {p.scheme: p for p in PaymentPolicy.objects.filter(year=YEAR, region__isnull=True)}
        # … and the benefit engine's policy (SPEC §6.8), which settles nothing
        assert sorted(policies) == sorted([*SCHEMES, "benefits"])
        assert {p.status for p in policies.values()} == {ApprovalStatus.APPROVED}
        assert policies["capitation"].name == "湖州预设"
        assert policies["special_outpatient"].name == policies["family_doctor"].name == "攀枝花预设"
        assert policies["alliance_budget"].name == "开封预设"
        # Seeding again, or writing the policies again, neither duplicates nor rewrites them.
        call_command("seed_demo", "--size", "small", stdout=StringIO())
        assert write_policies(YEAR, log=lambda _line: None) == 0
        assert PaymentPolicy.objects.filter(year=YEAR).count() == len(SCHEMES) + 1


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_computes_with_consistent_figures(settled, django_db_blocker, scheme):
    run, output = settled[scheme]
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    assert "已计算" in output
    with django_db_blocker.unblock():
        units = results(run)
        paid = paid_by_unit(scheme)
    assert units and run.units_total == run.units_done == len(units)
    for r in units:
        # Every scheme: S = Q − A, the parts add up to S, year-end = E − 已拨付 (SPEC §5, §6).
        assert r.surplus == r.quota - r.actual, r.unit_code
        assert r.unit_part + r.fund_part == r.surplus, r.unit_code
        assert r.amount == r.entitled - r.paid, r.unit_code
        extra = r.actual if scheme == "capitation" else D("0")  # capitation pays claims as they occur
        assert r.paid == (paid.get(r.unit_code) or D("0")) + extra, r.unit_code
    assert sum(r.unit_part for r in units) + sum(r.fund_part for r in units) == sum(r.surplus for r in units)


def test_capitation_shares_are_85_percent(settled, django_db_blocker):
    run, _ = settled["capitation"]
    with django_db_blocker.unblock():
        bonus = {a.unit_code: a for a in Assessment.objects.filter(year=YEAR)}
        units = results(run)
    for r in units:
        a = bonus.get(r.unit_code)
        # Huzhou: 85% either way, moved by the alliance's assessment points (at most 5).
        if r.surplus >= 0:
            share = D("0.85") + (a.retention_bonus / 100 if a else 0)
        else:
            share = D("0.85") - (a.overspend_reduction / 100 if a else 0)
        assert r.unit_part == q2(r.surplus * share), r.unit_code
        assert r.entitled == r.actual + r.unit_part, r.unit_code


def test_alliance_budget_entitlement_between_95_and_100_percent_of_b(settled, django_db_blocker):
    run, _ = settled["alliance_budget"]
    with django_db_blocker.unblock():
        budgets = dict(Budget.objects.filter(year=YEAR, scheme=Scheme.ALLIANCE_BUDGET).values_list("unit_code")
                       .annotate(total=Sum("amount")).values_list("unit_code", "total"))
        scores = dict(Assessment.objects.filter(year=YEAR).values_list("unit_code", "score"))
        units = results(run)
    for r in units:
        b = budgets[r.unit_code]
        assert r.quota == b
        # E = B − 5% × B × (1 − min(1, score / 90)); unit part = E − A
        f = min(D("1"), scores[r.unit_code] / 90)
        assert r.entitled == q2(b - b * D("0.05") * (1 - f)), r.unit_code
        assert r.unit_part == r.entitled - r.actual


def test_family_doctor_entitlement_is_a_times_score(settled, django_db_blocker):
    run, _ = settled["family_doctor"]
    with django_db_blocker.unblock():
        scores = dict(Assessment.objects.filter(year=YEAR).values_list("unit_code", "score"))
        units = results(run)
    for r in units:
        score = scores.get(r.unit_code, D("100"))
        assert r.entitled == q2(r.actual * score / 100), r.unit_code
        assert r.unit_part == r.entitled - r.actual
    assert any(r.unit_code not in scores for r in units)  # some institutions have no assessment: 100


def test_special_outpatient_sharing(settled, django_db_blocker):
    run, _ = settled["special_outpatient"]
    with django_db_blocker.unblock():
        units = results(run)
    for r in units:
        if r.surplus >= 0:
            assert r.entitled == r.actual + q2(r.surplus * D("0.8")), r.unit_code
        else:
            overspend = -r.surplus
            # E = Q + 0.4 × min(O, 10% × Q)
            assert r.entitled == r.quota + q2(D("0.4") * min(overspend, r.quota * D("0.1")))


def test_drg_pools_distribute_their_budget(settled, django_db_blocker):
    run, _ = settled["drg"]
    assert not any("超出舍入误差" in w for w in run.warnings)
    with django_db_blocker.unblock():
        budgets = dict(Budget.objects.filter(year=YEAR, scheme=Scheme.DRG).values_list("unit_code", "amount"))
        units = results(run)
    pools = {}
    for r in units:
        pools.setdefault(r.details["pool_code"], []).append(r)
    assert len(pools) > 1
    for code, members in pools.items():
        points = D(str(members[0].details["pool_points"]))
        # Σ E = B up to rounding: each E to 分 (≤ 0.005 each) and PV to 6 places (≤ 0.0000005 per point).
        tolerance = D("0.005") * len(members) + points * D("0.0000005")
        assert abs(sum(r.entitled for r in members) - budgets[code]) <= tolerance, code
