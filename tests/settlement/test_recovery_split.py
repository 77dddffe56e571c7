"""Recovery of findings summed over several claims (FRQ01, FRQ02, REL01; SPEC §9): each claim's share is
deducted in the unit whose A paid it, once; what no current run's A holds stays stand-alone, exactly.

The units are the two capitation alliances of test_engine_runs.build_two_alliances: A holds the claims of
p1 (contracted at A's hospital), B those of p3 (at B's hospital), whatever institution treated them."""
import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from settlement.audit import recovery
from settlement.audit.models import Finding, FindingStatus, RecoveryItem, Severity
from settlement.audit.registry import registered_rules
from settlement.audit.rules.base import Share
from settlement.audit.services import decide, run_audit
from settlement.benefits.services import compute_expected
from settlement.engine.base import RunContext, get_rule
from settlement.engine.models import UnitResult
from settlement.engine.services import approve_run, start_run
from settlement.models import VisitType
from tests import factories
from tests.settlement import benefit_builders as b
from tests.settlement.engine_data import claim, d, policy
from tests.settlement.test_engine_runs import build_two_alliances

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def world(make_user):
    county, a, b_ = build_two_alliances()
    policy()
    p1 = a.lead_hospital.contracts.get(start=d("2024-01-01")).person
    p3 = b_.lead_hospital.contracts.get().person
    return {"county": county, "a": a, "b": b_, "p1": p1, "p3": p3, "city": make_user("city"),
            "bureau": make_user("county", county.code)}


def confirm(finding, user):
    decide([finding.pk], user, True, "核实属实")


def as_frq01_writes_it(world, beyond, institution=None, person=None):
    """A confirmed FRQ01 finding whose visits beyond the limit are `beyond`, as the rule writes one:
    no claim of its own, 涉及金额 = Σ their 统筹支付, the ids in evidence_data['beyond_claim_ids']."""
    return Finding.objects.create(
        year=2025, rule="FRQ01", rule_name="超频就诊", subject=f"hand:{beyond[0].pk}", severity=Severity.SUSPECT,
        region=world["county"], institution=institution or beyond[0].institution, person=person or beyond[0].person,
        amount=sum((c.fund_paid for c in beyond), D("0.00")), evidence="超出限额的就诊",
        evidence_data={"claim_ids": [c.pk for c in beyond], "beyond_claim_ids": [c.pk for c in beyond]},
        status=FindingStatus.CONFIRMED, seen_at=timezone.now(),
    )


def items(result):
    return [(i.finding_id, i.claim_id, i.amount) for i in recovery.deducted_items(result)]


def in_year(run, code):
    result = run.results.get(unit_code=code)
    assert result.amount == result.entitled - result.paid - result.recovery
    return result


# --- the split itself: pure figures -----------------------------------------------------------


def _share(amount, claim_id=None, case_id=None):
    return Share(1, claim_id, case_id, D(amount))


def test_shares_that_add_up_are_each_deducted_exactly_and_leave_nothing():
    taken, rest = recovery.split(D("42.50"), [_share("12.50", claim_id=8), _share("30.00", claim_id=7)])
    assert [(t.claim_id, t.amount) for t in taken] == [(7, D("30.00")), (8, D("12.50"))]
    assert rest == D("0.00")


def test_an_under_paid_item_lowers_the_last_items_so_the_net_is_deducted_never_more():
    # REL01 over 8.00 (claim 1), −3.00 (claim 2), 5.00 (case 3): the rule's amount is the net 10.00.
    taken, rest = recovery.split(D("10.00"), [_share("8.00", claim_id=1), _share("-3.00", claim_id=2),
                                              _share("5.00", case_id=3)])
    assert [(t.claim_id, t.case_id, t.amount) for t in taken] == [(1, None, D("8.00")), (None, 3, D("2.00"))]
    assert rest == D("0.00")


def test_shares_that_no_longer_cover_the_amount_leave_the_difference_as_the_rest():
    taken, rest = recovery.split(D("42.50"), [_share("30.00", claim_id=7)])  # the 12.50 claim is gone
    assert [t.amount for t in taken] == [D("30.00")] and rest == D("12.50")
    taken, rest = recovery.split(D("20.00"), [_share("30.00", claim_id=7)])  # re-uploaded dearer since
    assert [t.amount for t in taken] == [D("20.00")] and rest == D("0.00")


# --- each rule's shares add up to its 涉及金额 (identity) ------------------------------------


def _shares(finding):
    rule = registered_rules()[finding.rule]
    shares = rule.shares(finding.year, {finding.pk: finding.evidence_data})
    return sorted(((s.claim_id, s.case_id, s.amount) for s in shares), key=lambda s: (s[0] is None, s[0] or s[1]))


def test_frq01_shares_are_the_visits_beyond_the_limit_and_add_up_to_its_amount(world):
    p1, ia = world["p1"], world["a"].lead_hospital
    for day in range(1, 11):
        claim(p1, ia, datetime.date(2025, 3, day), "20.00")
    eleventh = claim(p1, ia, datetime.date(2025, 3, 11), "30.00")
    twelfth = claim(p1, ia, datetime.date(2025, 3, 12), "12.50")
    run_audit(2025, ["FRQ01"])
    (finding,) = Finding.objects.filter(rule="FRQ01")
    assert finding.amount == D("42.50")  # 30.00 + 12.50, the 11th and 12th visits
    assert _shares(finding) == [(eleventh.pk, None, D("30.00")), (twelfth.pk, None, D("12.50"))]
    assert sum(s for _, _, s in _shares(finding)) == finding.amount


def test_frq02_shares_are_that_days_visits_and_add_up_to_its_amount(world):
    p1 = world["p1"]
    third = factories.institution(county=world["county"])
    day = datetime.date(2025, 5, 6)
    visits = [claim(p1, world["a"].lead_hospital, day, "30.00"), claim(p1, world["b"].lead_hospital, day, "12.50"),
              claim(p1, third, day, "7.25")]
    run_audit(2025, ["FRQ02"])
    (finding,) = Finding.objects.filter(rule="FRQ02")
    assert finding.amount == D("49.75")
    assert _shares(finding) == [(c.pk, None, c.fund_paid) for c in visits]
    assert sum(s for _, _, s in _shares(finding)) == finding.amount


def test_rel01_shares_are_each_out_of_city_items_difference_and_add_up_to_its_amount():
    place = b.place()
    b.approved_table()
    person = place["resident"]
    b.relocation(person, b.day(1, 10), "460100")
    b.relocation(person, b.day(9, 1), "460100")
    # As test_audit_benefit_rules: the claim's 600.00 − 400.00 = 200.00, the case's 7,000.00 − 5,000.00 = 2,000.00.
    away = b.claim(person, place["haikou_secondary"], b.day(10, 5), "1200.00", fund="600.00")
    stay = b.case(person, place["haikou_secondary"], b.day(11, 1), b.day(11, 9), "10600.00", fund="7000.00")
    b.claim(person, place["三级"], b.day(6, 1), "500.00", fund="150.00")  # in the city: not REL01's
    compute_expected(b.YEAR)
    run_audit(b.YEAR, ["REL01"])
    (finding,) = Finding.objects.filter(rule="REL01")
    assert finding.amount == D("2200.00")
    assert _shares(finding) == [(away.pk, None, D("200.00")), (None, stay.pk, D("2000.00"))]
    assert sum(s for _, _, s in _shares(finding)) == finding.amount


# --- deducted where each claim was paid ----------------------------------------------------


def test_a_findings_claims_in_two_units_are_deducted_each_in_its_own(world, client):
    """FRQ01 whose two beyond-limit claims, 30.00 and 12.50, sit in A's A and in B's A."""
    in_a = claim(world["p1"], world["a"].lead_hospital, d("2025-03-11"), "30.00")
    in_b = claim(world["p3"], world["b"].lead_hospital, d("2025-03-12"), "12.50")
    finding = as_frq01_writes_it(world, [in_a, in_b])
    run = start_run("capitation", 2025, sync=True)
    a, b_ = in_year(run, "YGT-A"), in_year(run, "YGT-B")
    assert (a.recovery, b_.recovery) == (D("30.00"), D("12.50"))
    assert items(a) == [(finding.pk, in_a.pk, D("30.00"))] and items(b_) == [(finding.pk, in_b.pk, D("12.50"))]
    assert not recovery.standalone(2025).exists()  # 30.00 + 12.50 = 42.50: nothing left
    client.force_login(world["city"])
    page = client.get(reverse("admin:settlement_unitresult_statement", args=[a.pk])).content.decode()
    assert in_a.serial in page and in_b.serial not in page
    assert "按单据分摊：疑点涉及金额42.50元中本单据的部分" in page and "30.00" in page


def test_a_claim_in_no_schemes_a_leaves_exactly_its_share_stand_alone(world, client):
    """FRQ02: p1 at three institutions one day; the 7.25 特病门诊 visit is in no capitation A."""
    p1, day = world["p1"], datetime.date(2025, 5, 6)
    third = factories.institution(county=world["county"])
    at_a = claim(p1, world["a"].lead_hospital, day, "30.00")
    at_b = claim(p1, world["b"].lead_hospital, day, "12.50")
    claim(p1, third, day, "7.25", visit_type=VisitType.SPECIAL)
    run_audit(2025, ["FRQ02"])
    (finding,) = Finding.objects.filter(rule="FRQ02")
    confirm(finding, world["bureau"])
    run = start_run("capitation", 2025, sync=True)
    a = in_year(run, "YGT-A")
    assert a.recovery == D("42.50")  # p1's two 普通门诊 visits, wherever treated, are A's
    assert items(a) == [(finding.pk, at_a.pk, D("30.00")), (finding.pk, at_b.pk, D("12.50"))]
    assert in_year(run, "YGT-B").recovery == D("0.00")
    (alone,) = recovery.standalone(2025)
    assert (alone.pk, alone.amount, alone.deducted, alone.rest) == (finding.pk, D("49.75"), D("42.50"), D("7.25"))
    # On the findings list it is both partly deducted and, for the rest, recovered on its own.
    client.force_login(world["city"])
    for value in ("standalone", "deducted"):
        listing = client.get(reverse("admin:settlement_finding_changelist"), {"recovery": value})
        assert [f.pk for f in listing.context_data["cl"].result_list] == [finding.pk], value


def test_a_claim_deleted_since_leaves_its_share_stand_alone_and_nothing_is_spread(world):
    kept = claim(world["p1"], world["a"].lead_hospital, d("2025-03-11"), "30.00")
    gone = claim(world["p1"], world["a"].lead_hospital, d("2025-03-12"), "12.50")
    finding = as_frq01_writes_it(world, [kept, gone])
    gone.delete()
    run = start_run("capitation", 2025, sync=True)
    assert items(in_year(run, "YGT-A")) == [(finding.pk, kept.pk, D("30.00"))]
    (alone,) = recovery.standalone(2025)
    assert (alone.deducted, alone.rest) == (D("30.00"), D("12.50"))


def test_a_claim_in_two_schemes_a_is_deducted_once(world):
    """p1's 普通门诊 claim is in capitation A's A and in the global budget's A of the same alliance (it
    covers its contracted residents): the capitation run took it first, the budget run may not."""
    shared = claim(world["p1"], world["a"].lead_hospital, d("2025-03-11"), "30.00")
    other = claim(world["p1"], world["a"].lead_hospital, d("2025-03-12"), "12.50")
    finding = as_frq01_writes_it(world, [shared, other])
    budget = get_rule("alliance_budget")
    ctx, params = RunContext("alliance_budget", 2025), budget.params_class()
    before = recovery.deductions(budget, ctx, params, ["YGT-A"])
    assert [(x.claim_id, x.amount) for x in before["YGT-A"]] == [(shared.pk, D("30.00")), (other.pk, D("12.50"))]
    start_run("capitation", 2025, sync=True)
    assert recovery.deductions(budget, ctx, params, ["YGT-A"]) == {}
    assert RecoveryItem.objects.filter(finding=finding).count() == 2


def test_an_approved_run_is_untouched_by_a_later_confirmation_and_shows_the_shares_pending(world, client):
    in_a = claim(world["p1"], world["a"].lead_hospital, d("2025-03-11"), "30.00")
    in_b = claim(world["p3"], world["b"].lead_hospital, d("2025-03-12"), "12.50")
    finding = as_frq01_writes_it(world, [in_a, in_b])
    Finding.objects.filter(pk=finding.pk).update(status=FindingStatus.OPEN)
    run = start_run("capitation", 2025, sync=True)
    approve_run(run, world["city"])
    before = {r.unit_code: (r.recovery, r.amount) for r in run.results.all()}
    confirm(finding, world["bureau"])
    assert {r.unit_code: (r.recovery, r.amount) for r in UnitResult.objects.filter(run=run)} == before
    assert not RecoveryItem.objects.exists()
    a = run.results.get(unit_code="YGT-A")
    assert recovery.pending(a) == [recovery.Deduction(finding.pk, D("30.00"), in_a.pk)]
    client.force_login(world["city"])
    page = client.get(reverse("admin:settlement_unitresult_statement", args=[a.pk])).content.decode()
    assert "待下一版本扣回" in page and "应扣金额合计30.00元" in page and in_a.serial in page
    # Until the next version takes them, the whole amount is recovered on its own.
    (alone,) = recovery.standalone(2025)
    assert alone.rest == D("42.50")
    second = start_run("capitation", 2025, sync=True)
    assert second.version == 2 and second.results.get(unit_code="YGT-A").recovery == D("30.00")
    assert not recovery.standalone(2025).exists()


# --- 打印: the year's stand-alone recoveries per institution ---------------------------------


@pytest.fixture
def standalone_set(world, other_county):
    """Hand-made FRQ01 findings (特病门诊 visits are in no capitation A), after the capitation run:

    A's hospital: 42.50 of which p1's 普通门诊 30.00 is deducted by A (rest 12.50), and 20.00 (rest 20.00)
                  → 62.50, 30.00, 32.50; a 5.00 finding deducted in full and an open one are not listed.
    B's hospital: 7.25, nothing deducted → 7.25.   Another county's hospital: 100.00 → 100.00.
    Overall: 169.75, 30.00, 139.75."""
    ia, ib = world["a"].lead_hospital, world["b"].lead_hospital
    ic = factories.institution(county=other_county)
    special = VisitType.SPECIAL
    p1, p3 = world["p1"], world["p3"]
    stranger = factories.person(other_county)
    as_frq01_writes_it(world, [claim(p1, ia, d("2025-03-11"), "30.00"),
                               claim(p1, ia, d("2025-03-12"), "12.50", visit_type=special)])
    as_frq01_writes_it(world, [claim(p1, ia, d("2025-04-11"), "20.00", visit_type=special)])
    as_frq01_writes_it(world, [claim(p1, ia, d("2025-05-11"), "5.00")])
    open_one = as_frq01_writes_it(world, [claim(p1, ia, d("2025-06-11"), "9.00", visit_type=special)])
    Finding.objects.filter(pk=open_one.pk).update(status=FindingStatus.OPEN)
    as_frq01_writes_it(world, [claim(p3, ib, d("2025-03-11"), "7.25", visit_type=special)])
    far = as_frq01_writes_it(world, [claim(stranger, ic, d("2025-03-11"), "100.00", visit_type=special)])
    Finding.objects.filter(pk=far.pk).update(region=other_county)
    start_run("capitation", 2025, sync=True)
    return {**world, "ia": ia, "ib": ib, "ic": ic, "other_county": other_county}


def sheet(client, user, **query):
    client.force_login(user)
    return client.get(reverse("admin:settlement_finding_standalone"), {"year": 2025, **query})


def totals(response):
    return {g["label"].rsplit("（", 1)[-1].rstrip("）"): (g["amount"], g["deducted"], g["rest"])
            for g in response.context["groups"]}, tuple(response.context["overall"].values())


def test_the_printable_list_totals_per_institution_and_overall(standalone_set, client):
    s = standalone_set
    response = sheet(client, s["city"])
    assert response.status_code == 200
    assert totals(response) == ({s["ia"].code: ("62.50", "30.00", "32.50"), s["ib"].code: ("7.25", "0.00", "7.25"),
                                 s["ic"].code: ("100.00", "0.00", "100.00")}, ("169.75", "30.00", "139.75"))
    page = response.content.decode()
    assert "打印" in page and "本机构合计（2条）" in page and "另行追回金额" in page and "总计" in page
    # Reached from the findings list, for the year it is filtered to.
    listing = client.get(reverse("admin:settlement_finding_changelist"), {"year": 2025}).content.decode()
    assert "打印单独追回清单" in listing and f"{reverse('admin:settlement_finding_standalone')}?year=2025" in listing


def test_a_hospital_reads_only_its_institution_and_a_county_only_its_county(standalone_set, client, make_user):
    s = standalone_set
    hospital = make_user("hospital", s["ib"].code)
    assert totals(sheet(client, hospital)) == ({s["ib"].code: ("7.25", "0.00", "7.25")}, ("7.25", "0.00", "7.25"))
    assert sheet(client, hospital, institution=s["ia"].code).status_code == 404
    assert sheet(client, hospital, institution="NO-SUCH").status_code == 404
    bureau = s["bureau"]
    assert totals(sheet(client, bureau))[1] == ("69.75", "30.00", "39.75")  # A's and B's hospitals
    assert totals(sheet(client, bureau, institution=s["ia"].code))[1] == ("62.50", "30.00", "32.50")
    assert sheet(client, bureau, institution=s["ic"].code).status_code == 404
    other = make_user("county", s["other_county"].code)
    assert totals(sheet(client, other)) == ({s["ic"].code: ("100.00", "0.00", "100.00")}, ("100.00", "0.00", "100.00"))


def test_a_bad_year_gets_a_chinese_message(standalone_set, client):
    for year, message in (("abc", "年度参数无效：请填写四位数字年度，如2025"), ("1999", "年度应在2000至2100之间"),
                          ("", "请指定年度")):
        response = sheet(client, standalone_set["city"], year=year)
        assert response.status_code == 400 and message in response.content.decode(), year


def test_the_printable_list_reads_a_fixed_number_of_queries(standalone_set, client):
    client.force_login(standalone_set["city"])

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("admin:settlement_finding_standalone"), {"year": 2025}).status_code == 200
        return len(queries)

    before = count()
    ia = standalone_set["ia"]
    for month in range(7, 12):
        as_frq01_writes_it(standalone_set, [claim(standalone_set["p1"], ia, datetime.date(2025, month, 1), "1.00",
                                                  visit_type=VisitType.SPECIAL)])
    assert count() == before
